"""Training building blocks on tiny random networks: checkpoint files, RNG state, the step sampler."""

from __future__ import annotations

import copy
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from oct_srgan import checkpoint, training
from oct_srgan.errors import ModelError
from tests.helpers.training import one_thread, random_generator_file  # noqa: F401


def test_load_checkpoint_refuses_files_that_are_not_checkpoints(tmp_path: Path) -> None:
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint\n")
    generator = random_generator_file(tmp_path / "generator.pt")
    pickled = tmp_path / "pickled.pt"
    torch.save({"generator": torch.nn.Linear(1, 1), "step": 1, "model_spec": {}}, pickled)
    cases = (
        (text, "not a readable PyTorch checkpoint"),
        (pickled, "not a safe oct-srgan checkpoint"),
        (generator, "not an oct-srgan training checkpoint"),
        (tmp_path / "missing.pt", "file not found"),
    )
    for path, why in cases:
        with pytest.raises(ModelError) as info:
            checkpoint.load_checkpoint(path)
        assert str(info.value).startswith(f"{path}: {why}") and "\n" not in str(info.value)


def test_checkpoint_rng_state_round_trips_through_weights_only_load(tmp_path: Path) -> None:
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    np.random.standard_normal()  # leaves a cached gaussian in numpy's state
    path = checkpoint.save_checkpoint(tmp_path / "rng.pt", {"rng": checkpoint.rng_state()})
    expected = (torch.rand(3), np.random.standard_normal(3), [random.random() for _ in range(3)])
    checkpoint.set_rng_state(torch.load(path, weights_only=True)["rng"])
    got = (torch.rand(3), np.random.standard_normal(3), [random.random() for _ in range(3)])
    torch.testing.assert_close(got[0], expected[0], rtol=0, atol=0)
    np.testing.assert_array_equal(got[1], expected[1])
    assert got[2] == expected[2]


def test_generator_file_is_half_precision_on_disk_and_float32_loaded(tmp_path: Path) -> None:
    path = random_generator_file(tmp_path / "g.pt")
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == checkpoint.GENERATOR_FORMAT
    assert {v.dtype for v in raw["state_dict"].values()} == {torch.float16, torch.int64}
    weights, spec, meta = checkpoint.load_generator_file(path)
    assert {v.dtype for v in weights.values()} == {torch.float32, torch.int64}
    assert meta == {"source": "test"} and spec["num_blocks"] == 2


def test_step_sampler_batches_depend_only_on_seed_step_and_rank() -> None:
    def batches(rank: int, start: int = 0) -> list[list[tuple[int, int]]]:
        return list(training.StepBatchSampler(8, 2, seed=0, start=start, stop=6, rank=rank, world=2))

    assert batches(1)[3:] == batches(1, start=3)
    epoch0 = [i for step in range(2) for rank in (0, 1) for i, _ in batches(rank)[step]]
    assert sorted(epoch0) == list(range(8))
    seeds = [s for rank in (0, 1) for batch in batches(rank) for _, s in batch]
    assert len(set(seeds)) == len(seeds)


@pytest.mark.parametrize("kind", ["bce", "relativistic"])
def test_srgan_step_grads_equal_the_classic_frozen_d_then_detached_sr_steps(kind: str) -> None:
    """One shared D pass on SR gives G the grads of a G step on a frozen D, and D those of a D step on detached SR."""
    from oct_srgan.config import load_config
    from oct_srgan.models import build_discriminator, build_generator, generator_spec
    from tests.paths import REPO

    cfg = load_config(REPO / "configs" / "default.yaml", [
        "train.stage=srgan", "model.channels=8", "model.num_blocks=1", "model.disc_channels=8",
        "model.norm=batch", "loss.pixel_weight=1", "loss.content_weight=0", "loss.adversarial_weight=0.5",
        f"loss.adversarial={kind}", "train.channels_last=false",
    ])
    torch.manual_seed(0)
    nets = training.make_nets(cfg, build_generator(generator_spec(cfg)), build_discriminator(cfg), torch.device("cpu"))
    losses = training.make_losses(cfg, None, torch.device("cpu"))
    hr = torch.rand(4, 1, 32, 32)
    lr = torch.nn.functional.avg_pool2d(hr, 4)
    g_ref, d_ref = copy.deepcopy(nets.generator), copy.deepcopy(nets.discriminator)

    sr = g_ref(lr)
    d_ref.requires_grad_(False)
    real = d_ref(hr).detach()
    loss_g = losses.pixel(sr, hr) + 0.5 * losses.adversarial.generator(real, d_ref(sr))
    want_g = torch.autograd.grad(loss_g, list(g_ref.parameters()))
    d_ref.requires_grad_(True)
    loss_d = losses.adversarial.discriminator(d_ref(hr), d_ref(sr.detach()))
    want_d = torch.autograd.grad(loss_d, list(d_ref.parameters()))

    values, finite = training.train_step(nets, losses, lr, hr)

    assert finite
    assert values["loss_g"] == pytest.approx(float(loss_g), rel=1e-5)
    assert values["loss_d"] == pytest.approx(float(loss_d), rel=1e-5)
    for got, want in zip([p.grad for p in nets.generator.parameters()], want_g, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
    for got, want in zip([p.grad for p in nets.discriminator.parameters()], want_d, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
