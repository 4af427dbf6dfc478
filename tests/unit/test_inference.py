"""Inference: tiled = untiled, shapes, model loading, whole-scan and whole-file enhancement."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.data.utils import dense_patch_slices
from PIL import Image
from torch.optim.swa_utils import AveragedModel

from oct_srgan import inference, loading
from oct_srgan.checkpoint import save_checkpoint, save_generator_file
from oct_srgan.errors import ModelError, OctSrganError
from oct_srgan.inference import SRInferer
from oct_srgan.inference.bscans import super_resolve_bscans
from oct_srgan.io import Geometry, Scan
from oct_srgan.loading import LoadedModel, load_model
from tests.helpers.nets import random_net, untiled


@pytest.mark.parametrize("axes, shape", [("both", (2, 1, 284, 364)), ("lateral", (2, 1, 71, 364))])
def test_output_shapes_for_non_divisible_sizes(axes: str, shape: tuple[int, ...]) -> None:
    """Noise input, so only a core 16 LR pixels from any cut, beyond this net's 13-pixel reach, agrees."""
    net = random_net(3, channels=8, num_blocks=1, upsample_axes=axes)
    lr = torch.rand(2, 1, 71, 91)
    tiled = inference.super_resolve(net, lr, scale=4, upsample_axes=axes, tile=64, overlap=32)
    assert tiled.shape == shape
    assert (tiled - untiled(net, lr)).abs().max() < 1e-3


def test_image_smaller_than_the_tile_is_not_padded() -> None:
    net = random_net(4, channels=8, num_blocks=1)
    lr = torch.rand(3, 1, 20, 30)
    out = inference.super_resolve(net, lr, scale=4, tile=128, batch_size=2)
    assert out.shape == (3, 1, 80, 120)
    torch.testing.assert_close(out, untiled(net, lr).clamp(0, 1), atol=1e-6, rtol=0)


def test_outputs_are_clamped() -> None:
    net = random_net(5, channels=8, num_blocks=1)
    with torch.no_grad():
        net.tail.bias.fill_(3.0)
    out = inference.super_resolve(net, torch.rand(1, 1, 16, 16), scale=4, tile=0)
    assert out.max() == 1.0 and out.min() >= 0.0


@pytest.mark.parametrize("tile, overlap", [(128, 32), (64, 32), (48, 16), (30, 10)])
def test_every_pixel_lies_in_some_window_core(tile: int, overlap: int) -> None:
    """The layout invariant the blending relies on, for MONAI's own window placement."""
    margin = overlap // 2
    for size in list(range(tile - 2, tile + 40)) + [225, 450, 900]:
        roi, step = inference.axis_layout(size, tile, overlap)
        assert roi <= tile
        slices = [s[0] for s in dense_patch_slices((size,), (roi,), (step,))]
        for x in range(size):
            cover = [s for s in slices if s.start <= x < s.stop]
            core = [s for s in cover if min(x - s.start, s.stop - 1 - x) >= margin]
            assert core or len(cover) == 1, (size, x)


def test_overlap_is_capped_at_half_the_tile() -> None:
    assert inference.overlap_pixels(0.75, 32) == 16 and inference.overlap_pixels(48, 64) == 32
    assert inference.overlap_pixels(0.25, 128) == 32 and inference.overlap_pixels(20, 128) == 20
    with pytest.raises(ValueError, match="overlap"):
        inference.overlap_pixels(-1, 64)


def test_prepared_paper_net_computes_no_conv_at_hr_resolution() -> None:
    """The 9x9 one-channel HR tail runs as its exact 5x5 sub-pixel form at 2x resolution."""
    from oct_srgan.models.fused import FusedConv2d

    net = random_net(3, channels=8, num_blocks=1, norm="batch")
    fast = inference.prepare_for_inference(net)
    seen: list[tuple[int, int]] = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: seen.append(tuple(inp[0].shape[-2:])))
             for m in fast.modules() if isinstance(m, (torch.nn.Conv2d, FusedConv2d))]
    lr = torch.rand(1, 1, 9, 11).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        out = fast(lr)
        ref = net(lr.contiguous())
    for hook in hooks:
        hook.remove()
    assert max(seen) == (18, 22)
    assert (out - ref).abs().max() < 1e-5


def test_auto_tile_is_whole_bscans_within_the_budget_else_a_tile() -> None:
    net = inference.prepare_for_inference(random_net(4, channels=8, num_blocks=1, norm="none"))
    per_pixel = inference.activation_bytes_per_pixel(net, 1)
    # The largest pair is the PReLU on 32 channels at 2x (4 positions per LR pixel), in + out,
    # float32, plus the 25 % margin.
    assert per_pixel == pytest.approx(4 * (32 * 4 + 32 * 4) * 1.25)
    assert inference.auto_tile((100, 200), per_pixel, budget=int(100 * 200 * per_pixel)) is None
    tile = inference.auto_tile((100, 200), per_pixel, budget=int(50 * 50 * per_pixel))
    assert tile == 50


def test_load_generator_from_a_generator_file(tmp_path: Path) -> None:
    net = random_net(7, channels=8, num_blocks=1, upsample_axes="lateral")
    path = save_generator_file(tmp_path / "g.pt", net.state_dict(), net.spec, {"stage": "srgan"})
    info = load_model(path)
    loaded = info.module
    assert not loaded.training
    assert info.scale == 4 and info.channels == 1 and info.axes == "lateral"
    assert info.source == "g.pt" and info.meta == {"stage": "srgan"} and info.spec == net.spec
    for name, value in net.state_dict().items():
        expected = value.half().float() if value.is_floating_point() else value
        torch.testing.assert_close(loaded.state_dict()[name], expected)


def test_load_generator_from_a_training_checkpoint_uses_ema(tmp_path: Path) -> None:
    net = random_net(8, channels=8, num_blocks=1)
    ema = AveragedModel(net, use_buffers=True)
    with torch.no_grad():
        for p in ema.module.parameters():
            p.add_(1.0)
    state = {"generator": net.state_dict(), "ema": ema.state_dict(), "step": 7, "model_spec": net.spec,
             "config": {}, "run_id": "abc"}
    path = save_checkpoint(tmp_path / "step_0000007.pt", state)
    info = load_model(path)
    torch.testing.assert_close(info.module.head[0].weight, net.head[0].weight + 1.0)
    assert info.meta["step"] == 7


def test_load_generator_refuses_a_random_file(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    path.write_bytes(os.urandom(2000))
    with pytest.raises(ModelError) as err:
        load_model(path)
    message = str(err.value)
    assert "weights.pt" in message and "\n" not in message


def test_load_generator_missing_file_and_missing_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ModelError, match="nothere.pt"):
        load_model(tmp_path / "nothere.pt")
    monkeypatch.setattr(loading, "WEIGHTS_DIR", tmp_path / "weights")
    with pytest.raises(ModelError, match="default model"):
        load_model("default")


@pytest.fixture()
def tiny_model(tmp_path: Path) -> Path:
    net = random_net(11, channels=4, num_blocks=1, norm="none")
    return save_generator_file(tmp_path / "tiny.pt", net.state_dict(), net.spec, {})


def test_enhance_files_writes_skips_and_compares(tmp_path: Path, tiny_model: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray((np.random.default_rng(0).random((24, 36)) * 255).astype(np.uint8)).save(src / "a.png")
    Image.fromarray((np.random.default_rng(1).random((24, 36)) * 255).astype(np.uint8)).save(src / "b.png")
    (src / "c.png").write_bytes(b"\x89PNG not really")
    out = tmp_path / "out"
    out.mkdir()
    (out / "b_sr.png").write_bytes(b"keep")
    report = inference.enhance_files([src], out, str(tiny_model), compare=True)
    assert report.written == [(src / "a.png", out / "a_sr.png")]
    skipped = dict(report.skipped)
    assert "already exists" in skipped[src / "b.png"] and (out / "b_sr.png").read_bytes() == b"keep"
    assert "c.png" in skipped[src / "c.png"] and "\n" not in skipped[src / "c.png"]
    assert Image.open(out / "a_sr.png").size == (144, 96)
    assert report.comparisons == [out / "a_sr_compare.png"] and Image.open(out / "a_sr_compare.png").format == "PNG"
    assert sorted(p.name for p in out.iterdir()) == ["a_sr.png", "a_sr_compare.png", "b_sr.png"]
    assert report.model.scale == 4 and report.model.source == "tiny.pt"


def test_enhance_files_overwrite_and_unwritable_folder(tmp_path: Path, tiny_model: Path) -> None:
    src = tmp_path / "x.png"
    Image.fromarray(np.zeros((16, 16), dtype=np.uint8)).save(src)
    out = tmp_path / "out"
    out.mkdir()
    (out / "x_sr.png").write_bytes(b"old")
    report = inference.enhance_files([src], out, str(tiny_model), overwrite=True)
    assert report.written and Image.open(out / "x_sr.png").size == (64, 64)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OctSrganError) as err:
        inference.enhance_files([src], blocker / "sub", str(tiny_model))
    assert "sub" in str(err.value) and "\n" not in str(err.value)


def _grey_scan(h: int, w: int, n: int = 1) -> Scan:
    pixels = np.random.default_rng(3).random((n, h, w), dtype=np.float32)
    return Scan(pixels, Geometry(), "png", 8, "MONOCHROME2", None, None)


def test_progress_of_one_tiled_bscan_counts_tiles_as_they_finish() -> None:
    net = inference.prepare_for_inference(random_net(5, channels=2, num_blocks=0, norm="none"))
    info = LoadedModel(net, scale=4, channels=1, axes="both", source="test")
    starts: list[tuple[int, str]] = []
    calls: list[tuple[int, int]] = []
    inference.enhance_scan(_grey_scan(70, 100), SRInferer(info, tile=32, overlap=8, batch_size=2),
                           progress=lambda done, total: calls.append((done, total)),
                           on_start=lambda total, unit: starts.append((total, unit)))
    total = inference.tiles_per_image((70, 100), 32, 8)
    assert starts == [(total, "tile")] and total > 2
    assert len(calls) > 1 and all(t == total for _, t in calls)
    dones = [d for d, _ in calls]
    assert dones == sorted(dones) and all(b - a <= 2 for a, b in zip([0] + dones, dones))
    assert dones[-1] == total  # the windows MONAI really ran are the ones announced up front


@pytest.mark.parametrize("size,tile,overlap", [((70, 100), 32, 8), ((450, 900), 128, 32), ((33, 200), 48, 0.25)])
def test_tiles_per_image_matches_monai_window_count(size: tuple[int, int], tile: int, overlap: float) -> None:
    pixels = inference.overlap_pixels(overlap, tile)
    layout = [inference.axis_layout(s, tile, pixels) for s in size]
    slices = dense_patch_slices(size, tuple(r for r, _ in layout), tuple(step for _, step in layout))
    assert inference.tiles_per_image(size, tile, overlap) == len(slices)


def test_progress_of_untiled_bscans_counts_bscans() -> None:
    net = inference.prepare_for_inference(random_net(5, channels=2, num_blocks=0, norm="none"))
    info = LoadedModel(net, scale=4, channels=1, axes="both", source="test")
    scan = _grey_scan(20, 30, n=3)
    starts: list[tuple[int, str]] = []
    calls: list[tuple[int, int]] = []
    inference.enhance_scan(scan, SRInferer(info, tile=0), progress=lambda d, t: calls.append((d, t)),
                           on_start=lambda total, unit: starts.append((total, unit)))
    assert starts == [(3, "B-scan")] and calls == [(1, 3), (2, 3), (3, 3)]


def test_bscan_loop_yields_each_bscan_in_order_and_stops_where_before_raises() -> None:
    net = inference.prepare_for_inference(random_net(5, channels=2, num_blocks=0, norm="none"))
    inferer = SRInferer(LoadedModel(net, scale=4, channels=1, axes="both", source="test"), tile=0)
    pixels = _grey_scan(20, 30, n=3).pixels
    seen = [(k, lr.shape, sr.shape) for k, lr, sr in super_resolve_bscans(pixels, inferer)]
    assert seen == [(k, (1, 1, 20, 30), (1, 1, 80, 120)) for k in range(3)]

    def stop_at_two(k: int) -> None:
        if k == 2:
            raise InterruptedError

    done = []
    with pytest.raises(InterruptedError):
        for k, lr, sr in super_resolve_bscans(pixels, inferer, before=stop_at_two):
            done.append(k)
            torch.testing.assert_close(lr[0, 0], torch.from_numpy(pixels[k]))
    assert done == [0, 1]
