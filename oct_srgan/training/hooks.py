"""Observers of a training run, called at its events instead of logging inline in the loop.

Modelled on MONAI's ``MLFlowHandler`` (``monai/handlers/mlflow_handler.py``): one object per
concern with a handler per event (``start`` -> :meth:`Hook.session`, ``iteration_completed``,
``epoch_completed`` -> :meth:`Hook.validation_completed`, ``complete`` -> :meth:`Hook.completed`),
without ignite. Only rank 0 gets hooks, so the loop calls them unconditionally.
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
from collections.abc import Iterator
from typing import Any

from ..config import Config, dump_yaml, flatten, to_dict


class Hook:
    """One observer of a training run; every event handler defaults to doing nothing."""

    @contextlib.contextmanager
    def session(self, run_id: str | None) -> Iterator[str | None]:
        """Around the whole run (setup to end); yields the run id, ``run_id`` when resuming one."""
        yield run_id

    def iteration_completed(self, step: int, means: dict[str, float] | None) -> None:
        """After each step; ``means`` holds the ``train/*`` means at a log step, else None."""

    def validation_completed(self, step: int, metrics: dict[str, float], figure: Any) -> None:
        """After a validation: its ``val/*`` metrics and comparison figure (None without val items)."""

    def ranks_compared(self, step: int, max_abs_diff: float) -> None:
        """Under DDP, after the last step: how far the ranks' parameters are apart."""

    def interrupted(self, step: int) -> None:
        """A signal stopped the run after ``step`` (its checkpoint is saved)."""

    def completed(self, step: int) -> None:
        """The run reached its last step, before the generator is exported."""


class Hooks(Hook):
    """Several hooks called in order; sessions nest, the first one outermost."""

    def __init__(self, hooks: list[Hook]) -> None:
        self.hooks = hooks

    @contextlib.contextmanager
    def session(self, run_id: str | None) -> Iterator[str | None]:
        with contextlib.ExitStack() as stack:
            for hook in self.hooks:
                run_id = stack.enter_context(hook.session(run_id))
            yield run_id

    def iteration_completed(self, step: int, means: dict[str, float] | None) -> None:
        for hook in self.hooks:
            hook.iteration_completed(step, means)

    def validation_completed(self, step: int, metrics: dict[str, float], figure: Any) -> None:
        for hook in self.hooks:
            hook.validation_completed(step, metrics, figure)

    def ranks_compared(self, step: int, max_abs_diff: float) -> None:
        for hook in self.hooks:
            hook.ranks_compared(step, max_abs_diff)

    def interrupted(self, step: int) -> None:
        for hook in self.hooks:
            hook.interrupted(step)

    def completed(self, step: int) -> None:
        for hook in self.hooks:
            hook.completed(step)


def _config_hash(cfg: Config) -> str:
    return hashlib.sha256(dump_yaml(cfg).encode("utf-8")).hexdigest()[:8]


class MLflowHook(Hook):
    """The run's MLflow record: params and config at setup, losses, validation, lineage at the end."""

    def __init__(self, cfg: Config, tags: dict[str, str], params: dict[str, Any], manifest: Any,
                 dataset_hash: str) -> None:
        self.cfg, self.tags, self.params = cfg, tags, params
        self.manifest, self.dataset_hash = manifest, dataset_hash

    @contextlib.contextmanager
    def session(self, run_id: str | None) -> Iterator[str | None]:
        """Open the stage's run (reopen it on resume) and log the whole config and run facts as params."""
        from .. import tracking

        cfg, stage = self.cfg, self.cfg.train.stage
        run_name = f"{stage}-{cfg.name}-{_config_hash(cfg)}"
        with tracking.run(stage, run_name, tags=self.tags, experiment=cfg.tracking.experiment, run_id=run_id) as active:
            tracking.log_params({**flatten(to_dict(cfg)), **self.params})
            tracking.log_text(dump_yaml(cfg), "config.yaml")
            yield active.info.run_id

    def iteration_completed(self, step: int, means: dict[str, float] | None) -> None:
        from .. import tracking

        if means is not None:
            tracking.log_metrics(means, step=step)

    def validation_completed(self, step: int, metrics: dict[str, float], figure: Any) -> None:
        from .. import tracking

        tracking.log_metrics(metrics, step=step)
        if figure is not None:
            tracking.log_figure(figure, f"figures/val_step_{step:07d}.png")

    def ranks_compared(self, step: int, max_abs_diff: float) -> None:
        from .. import tracking

        tracking.log_metrics({"ddp/param_max_abs_diff": max_abs_diff}, step=step)

    def interrupted(self, step: int) -> None:
        from .. import tracking

        tracking.set_tags({"interrupted_at_step": step})

    def completed(self, step: int) -> None:
        """Record the train and val splits the model was made from (dataset lineage)."""
        from .. import tracking

        tracking.log_dataset_splits(self.manifest, self.dataset_hash, ("train", "val"))


class ProgressBar(Hook):
    """A tqdm bar on stderr over the run's steps, with the latest loss means."""

    def __init__(self, total: int, initial: int, desc: str, enabled: bool) -> None:
        self.total, self.initial, self.desc, self.enabled = total, initial, desc, enabled
        self.bar: Any = None

    @contextlib.contextmanager
    def session(self, run_id: str | None) -> Iterator[str | None]:
        from tqdm import tqdm

        self.bar = tqdm(total=self.total, initial=self.initial, desc=self.desc, unit="it", dynamic_ncols=True,
                        disable=not self.enabled, file=sys.stderr)
        try:
            yield run_id
        finally:
            self.bar.close()

    def iteration_completed(self, step: int, means: dict[str, float] | None) -> None:
        self.bar.update(1)
        if means is not None:
            self.bar.set_postfix({k.split("/")[1]: f"{v:.4g}" for k, v in means.items() if k != "train/lr"}, refresh=False)
