"""Training checkpoints and the portable generator file.

Both are plain ``torch.save`` dictionaries of tensors and Python values, so they load with
``torch.load(weights_only=True)``: opening a checkpoint someone sent you never runs their code.
Writes are atomic (temp file + rename), so a killed run never leaves a truncated checkpoint.
"""

from __future__ import annotations

import pickle
import random
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import DiskFullError, ModelError, is_disk_full
from .fsutil import atomic_path
from .models.architectures import full_spec

GENERATOR_FORMAT = "oct-srgan-generator/1"
TRAINING_KEYS = ("generator", "step", "model_spec")
_STEP_NAME = re.compile(r"^step_(\d+)\.pt$")


def checkpoint_name(step: int) -> str:
    return f"step_{step:07d}.pt"


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically."""
    path = Path(path)
    try:
        with atomic_path(path) as tmp, tmp.open("wb") as fh:
            torch.save(state, fh)  # a Python file: a full disk is ENOSPC, not torch's "unexpected pos"
    except OSError as exc:
        if is_disk_full(exc):
            raise DiskFullError(f"disk full: {path}") from None
        raise
    return path


def _load(path: Path) -> Any:
    if not path.is_file():
        raise ModelError(f"{path}: file not found")
    if not zipfile.is_zipfile(path):
        raise ModelError(f"{path}: not a readable PyTorch checkpoint (expected a torch.save zip archive)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ModelError(
            f"{path}: not a safe oct-srgan checkpoint (it holds Python objects other than tensors and plain "
            "values, which are never loaded)"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{path}: not a readable PyTorch checkpoint ({first})") from None


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a training checkpoint; anything else (corrupt, wrong content, missing) is a ModelError."""
    path = Path(path)
    state = _load(path)
    if not isinstance(state, dict) or any(k not in state for k in TRAINING_KEYS):
        raise ModelError(f"{path}: not an oct-srgan training checkpoint (missing generator/step/model_spec)")
    return state


def latest_checkpoint(directory: str | Path) -> Path | None:
    """The checkpoint with the highest step in ``directory`` (``step_XXXXXXX.pt``), if any."""
    directory = Path(directory)
    if not directory.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _STEP_NAME.match(p.name))]
    return max(found)[1] if found else None


def prune_checkpoints(directory: str | Path, keep: int) -> None:
    """Delete all but the ``keep`` newest step checkpoints."""
    directory = Path(directory)
    found = sorted((int(m.group(1)), p) for p in directory.iterdir() if (m := _STEP_NAME.match(p.name)))
    for _, path in found[: max(0, len(found) - keep)]:
        path.unlink(missing_ok=True)


def save_generator_file(
    path: str | Path,
    state_dict: dict[str, torch.Tensor],
    spec: dict[str, Any],
    meta: dict[str, Any],
    dtype: torch.dtype = torch.float16,
) -> Path:
    """Write the portable generator file; floating tensors are stored as ``dtype`` (half by default)."""
    weights = {
        k: (v.detach().to("cpu", dtype) if v.is_floating_point() else v.detach().cpu()).contiguous()
        for k, v in state_dict.items()
    }
    return save_checkpoint(
        path, {"format": GENERATOR_FORMAT, "state_dict": weights, "model_spec": dict(spec), "meta": dict(meta)}
    )


def load_generator_file(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """Read a generator file (or a training checkpoint) as (float32 state_dict, model_spec, meta).

    A training checkpoint is accepted too; its EMA weights are preferred because they are what
    validation measured.
    """
    path = Path(path)
    state = _load(path)
    if isinstance(state, dict) and state.get("format") == GENERATOR_FORMAT:
        weights, spec, meta = state["state_dict"], state["model_spec"], state.get("meta", {})
    elif isinstance(state, dict) and all(k in state for k in TRAINING_KEYS):
        weights = ema_weights(state["ema"]) if state.get("ema") else state["generator"]
        spec = state["model_spec"]
        meta = {"step": state["step"], "run_id": state.get("run_id"), "source": "training checkpoint"}
    else:
        raise ModelError(f"{path}: not an oct-srgan generator file or training checkpoint")
    for name, value in (("model_spec", spec), ("meta", meta), ("state_dict", weights)):
        if not isinstance(value, dict):
            raise ModelError(f"{path}: its {name} is a {type(value).__name__}, not a mapping")
    if not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise ModelError(f"{path}: its state_dict holds values that are not tensors")
    weights = {k: v.float() if v.is_floating_point() else v for k, v in weights.items()}
    try:
        spec = full_spec(spec)
    except ModelError as exc:
        raise ModelError(f"{path}: {exc}") from None
    return weights, spec, dict(meta)


def ema_weights(ema_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The generator state_dict held inside an ``AveragedModel`` state_dict."""
    return {k[len("module.") :]: v for k, v in ema_state.items() if k.startswith("module.")}


def check_spec(path: str | Path, found: dict[str, Any], expected: dict[str, Any]) -> None:
    """Refuse weights made for another architecture, naming the first differing field.

    Keys missing from an older spec mean their architecture's default (``full_spec``).
    """
    found, expected = full_spec(found), full_spec(expected)
    for key in sorted(set(found) | set(expected)):
        if found.get(key) != expected.get(key):
            raise ModelError(
                f"{path}: checkpoint is for another architecture "
                f"({key}={found.get(key)!r}, this config needs {expected.get(key)!r})"
            )


def load_weights(module: torch.nn.Module, state_dict: dict[str, torch.Tensor], path: str | Path) -> None:
    """``load_state_dict`` that reports a mismatch as one ModelError line naming the file."""
    try:
        module.load_state_dict(state_dict)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:300]
        raise ModelError(f"{path}: weights do not fit this architecture ({detail})") from None


def rng_state() -> dict[str, Any]:
    """torch / numpy / python RNG states as tensors and plain values (weights_only-loadable)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": [version, list(internal), gauss_next],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` recorded."""
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    np.random.set_state(
        (
            np_state["name"],
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
