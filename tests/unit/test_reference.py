"""Reference pairs (noisy input -> clean average), one owner for the degradation, OCT quality measures."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from oct_srgan import metrics
from oct_srgan.config import DegradationConfig
from oct_srgan.errors import DataError
from oct_srgan.prepare import PrepareOptions, prepare_dataset
from oct_srgan.transforms import downscale, reference_train_transforms
from oct_srgan.config import DataConfig

def test_reference_size_mismatch_is_refused_naming_both_files(tmp_path: Path) -> None:
    from PIL import Image

    folder = tmp_path / "src" / "s1"
    folder.mkdir(parents=True)
    Image.fromarray(np.full((64, 80), 100, np.uint8)).save(folder / "scan.png")
    Image.fromarray(np.full((40, 80), 100, np.uint8)).save(folder / "average.png")
    with pytest.raises(DataError, match=r"scan\.png.*average\.png"):
        prepare_dataset([tmp_path / "src"], tmp_path / "out", PrepareOptions(val_fraction=0, test_fraction=0, reference="average"))


def test_paired_crop_takes_hr_from_the_reference_at_the_inputs_position() -> None:
    yy, xx = torch.meshgrid(torch.arange(120.0), torch.arange(160.0), indexing="ij")
    pattern = ((yy * 160 + xx) / (120 * 160))[None]
    reference = 0.5 * pattern  # a different image, registered pixel for pixel
    transform = reference_train_transforms(DataConfig(hr_crop=32, degradation=DegradationConfig()))
    transform.set_random_state(seed=3)
    for _ in range(5):
        out = transform({"input": pattern.clone(), "hr": reference.clone()})
        assert set(out) == {"lr", "hr"} and out["hr"].shape == (1, 32, 32) and out["lr"].shape == (1, 8, 8)
        assert torch.allclose(downscale(2.0 * out["hr"], 4), out["lr"], atol=1e-6)


def test_gain_and_offset_change_input_and_target_alike() -> None:
    """One random gain/offset per sample for input and target: LR = degrade(input') with input' = 2 * target'."""
    yy, xx = torch.meshgrid(torch.arange(120.0), torch.arange(160.0), indexing="ij")
    pattern = (0.2 + 0.6 * (yy * 160 + xx) / (120 * 160))[None]
    reference = 0.5 * pattern
    data_cfg = DataConfig(hr_crop=32, degradation=DegradationConfig(), gain=0.1, offset=0.04)
    transform = reference_train_transforms(data_cfg)
    transform.set_random_state(seed=5)
    gains = []
    for _ in range(20):
        item = {"input": pattern.clone(), "hr": reference.clone(), "ref_gain": 2.0, "ref_offset": 0.0}
        out = transform(item)
        # the matched target (2 x reference = the input) got the same gain/offset as the input
        assert torch.allclose(downscale(out["hr"], 4), out["lr"], atol=1e-5)
        crop_mean = out["hr"].mean().item()
        gains.append(crop_mean)
    assert np.std(gains) > 0.01  # a new draw for every sample


def test_speckle_kept_zero_degrades_the_matched_target_instead_of_the_input() -> None:
    """With all speckle removed (kept 0) the LR is made from the matched reference, not the noisy input."""
    from oct_srgan.config import SpeckleKeptConfig

    yy, xx = torch.meshgrid(torch.arange(120.0), torch.arange(160.0), indexing="ij")
    pattern = (0.2 + 0.6 * (yy * 160 + xx) / (120 * 160))[None]
    noisy = pattern + 0.1 * ((yy // 4 + xx // 4) % 2 - 0.5)[None]  # the speckle: 4-px checks the average lacks
    data_cfg = DataConfig(hr_crop=32, degradation=DegradationConfig(), speckle_kept=SpeckleKeptConfig(1.0, [0.0, 0.0]))
    transform = reference_train_transforms(data_cfg)
    transform.set_random_state(seed=2)
    out = transform({"input": noisy, "hr": 0.5 * pattern, "ref_gain": 2.0, "ref_offset": 0.0})
    assert torch.allclose(downscale(out["hr"], 4), out["lr"], atol=1e-5)


def test_target_grey_levels_move_with_the_gain() -> None:
    """Against the untouched crop, the target is gain * crop + offset with gain and offset in range."""
    ramp = torch.linspace(0.1, 0.9, 64).repeat(64, 1)[None]
    transform = reference_train_transforms(DataConfig(hr_crop=64, degradation=DegradationConfig(), gain=0.2,
                                                       offset=0.05))
    transform.set_random_state(seed=1)
    seen = set()
    for _ in range(8):
        out = transform({"input": ramp.clone(), "hr": ramp.clone(), "ref_gain": 1.0, "ref_offset": 0.0})
        hr = out["hr"][0]
        src = ramp[0] if hr[0, 0] < hr[0, -1] else ramp[0].flip(-1)  # the flip may have mirrored it
        a, b = np.polyfit(src.flatten().numpy(), hr.flatten().numpy(), 1)
        assert 0.8 - 1e-4 <= a <= 1.2 + 1e-4 and abs(b) <= 0.05 + 1e-4
        seen.add(round(float(a), 4))
    assert len(seen) > 1


def test_serve_check_mode_degrades_like_the_model(tiny_generator_file: Path) -> None:
    import dataclasses

    from oct_srgan.loading import load_model
    from oct_srgan.serving import ScanService, Upload

    model = load_model(tiny_generator_file)
    model = dataclasses.replace(model, degradation={"mode": "area", "axes": "both", "speckle": 0.0})
    service = ScanService(model, max_bytes=1 << 20, device="cpu", tile=None)
    rng = np.random.default_rng(0)
    pixels = rng.random((1, 64, 64)).astype(np.float32)

    class _Scan:
        def __init__(self, p: np.ndarray) -> None:
            self.pixels = p

    upload = Upload.__new__(Upload)
    upload.scan = _Scan(pixels)
    job = service._prepare(upload, "check")
    expected = downscale(torch.from_numpy(pixels)[:, None], 4, "area")[:, 0].numpy()
    assert np.allclose(job.source, expected, atol=1e-6)


def test_oct_rois_cnr_enl_epi_match_hand_computation() -> None:
    rng = np.random.default_rng(1)
    ref = np.full((80, 60), 0.4)
    ref[:30] = 0.05            # vitreous above the retina
    ref[50:56] = 0.9           # a bright layer
    signal, background = metrics.oct_rois(ref, margin=8, signal_quantile=0.95)
    assert background[:20].all() and not background[23:].any()   # rows < 30 - 8 (smoothing blurs the edge by ~2 px)
    assert signal[50:56].any() and not signal[:48].any() and not signal[58:].any()  # the bright layer only
    img = ref + rng.normal(0, 0.02, ref.shape)
    s, b = img[signal], img[background]
    assert metrics.cnr(img, signal, background) == pytest.approx(10 * math.log10(abs(s.mean() - b.mean()) / math.sqrt(s.var() + b.var())))
    assert metrics.enl(img, signal) == pytest.approx(s.mean() ** 2 / s.var())
    assert metrics.epi(ref, ref) == pytest.approx(1.0)
    lap = lambda a: (np.roll(a, 1, 0) + np.roll(a, -1, 0) + np.roll(a, 1, 1) + np.roll(a, -1, 1) - 4 * a)[1:-1, 1:-1]
    a, r = lap(img), lap(ref)
    hand = float(np.corrcoef(a.ravel(), r.ravel())[0, 1])
    inner = metrics.epi(img[1:-1, 1:-1], ref[1:-1, 1:-1], sigma=0)
    assert 0 < metrics.epi(img, ref, sigma=0) < 1 and hand == pytest.approx(metrics.epi(img, ref, sigma=0), abs=0.05)
    assert inner > 0
    from scipy.ndimage import gaussian_filter

    log = lambda a: lap(np.pad(gaussian_filter(a, 2.0, mode="reflect"), 1, mode="edge"))  # LoG = Laplacian of the blur
    smooth_hand = float(np.corrcoef(log(img).ravel(), log(ref).ravel())[0, 1])
    assert metrics.epi(img, ref) == pytest.approx(smooth_hand, abs=0.02)
    assert metrics.epi(img, ref) > metrics.epi(img, ref, sigma=0)  # pixel noise weighs less at the layer scale


def _shifted_pair(root: Path, seed: int, size: int, average: tuple[slice, slice], scan: tuple[slice, slice]) -> Path:
    """One group: ``average.png`` and ``scan.png`` cut from one random scene at two offsets."""
    from PIL import Image

    scene = (np.random.default_rng(seed).random((size, size)) * 255).astype(np.uint8)
    folder = root / "src" / "s1"
    folder.mkdir(parents=True)
    Image.fromarray(scene[average]).save(folder / "average.png")
    Image.fromarray(scene[scan]).save(folder / "scan.png")
    return root / "src"


SHIFTED = (np.s_[10:130, 10:170], np.s_[16:136, 3:163])  # average[y, x] == scan[y - 6, x + 7]


def test_registration_aligns_a_shifted_scan_to_its_reference_exactly(tmp_path: Path) -> None:
    from PIL import Image

    src = _shifted_pair(tmp_path, 3, 180, *SHIFTED)
    report = prepare_dataset([src], tmp_path / "out", PrepareOptions(val_fraction=0, test_fraction=0, reference="average"))
    row = report.manifest[report.manifest["is_reference"].astype(str) == "False"].iloc[0]
    assert (row.ref_shift_y, row.ref_shift_x) == (6, -7)
    hr = np.asarray(Image.open(tmp_path / "out" / row.hr_path))
    ref = np.asarray(Image.open(tmp_path / "out" / row.ref_path))
    assert hr.shape == ref.shape == (112, 152) and np.array_equal(hr, ref)


def test_registration_off_keeps_the_top_left_pairing(tmp_path: Path) -> None:
    src = _shifted_pair(tmp_path, 4, 180, *SHIFTED)
    report = prepare_dataset([src], tmp_path / "out",
                             PrepareOptions(val_fraction=0, test_fraction=0, reference="average", register=False))
    assert (report.manifest[["ref_shift_y", "ref_shift_x"]] == 0).all().all()
    assert set(report.manifest["height"]) == {120} and set(report.manifest["width"]) == {160}


def test_a_shift_too_large_for_one_location_is_refused_naming_both_files(tmp_path: Path) -> None:
    src = _shifted_pair(tmp_path, 5, 200, np.s_[0:120, 0:120], np.s_[40:160, 0:120])
    with pytest.raises(DataError, match=r"scan\.png.*average\.png.*shift of"):
        prepare_dataset([src], tmp_path / "out", PrepareOptions(val_fraction=0, test_fraction=0, reference="average"))


def _retina_like(seed: int) -> np.ndarray:
    yy, xx = np.mgrid[0:96, 0:128]
    band = 0.1 + 0.7 * np.exp(-((yy - 48) / 12.0) ** 2) * (1 + 0.2 * np.sin(xx / 7.0))
    return np.clip(band * np.random.default_rng(seed).gamma(30.0, 1 / 30.0, size=band.shape), 0, 1)


@pytest.mark.parametrize("match", [True, False])
def test_preprocess_records_each_inputs_gain_and_offset(tmp_path: Path, match: bool) -> None:
    """The manifest holds the fitted gain/offset of input vs reference; --no-intensity-match records none."""
    from PIL import Image

    folder = tmp_path / "src" / "s1"
    folder.mkdir(parents=True)
    reference = np.clip(_retina_like(0), 0, 1)
    Image.fromarray(np.round(reference * 255).astype(np.uint8)).save(folder / "average.png")
    Image.fromarray(np.round(np.clip(0.75 * reference + 0.06, 0, 1) * 255).astype(np.uint8)).save(folder / "scan.png")
    report = prepare_dataset([tmp_path / "src"], tmp_path / "out", PrepareOptions(
        val_fraction=0, test_fraction=0, reference="average", intensity_match=match))
    row = report.manifest[~report.manifest["is_reference"].astype(bool)].iloc[0]
    if match:
        assert row["ref_gain"] == pytest.approx(0.75, abs=0.02) and row["ref_offset"] == pytest.approx(0.06, abs=0.01)
    else:
        assert (row["ref_gain"], row["ref_offset"]) == (1.0, 0.0)


def test_reference_ceiling_of_a_noise_free_pair_is_perfect_faithfulness(tmp_path: Path) -> None:
    """An input that is its reference at other grey levels: the matched reference, as output, is faithful."""
    from PIL import Image

    from oct_srgan.data import open_dataset
    from oct_srgan.noref_eval import reference_ceiling

    folder = tmp_path / "src" / "s1"
    folder.mkdir(parents=True)
    reference = np.clip(_retina_like(1), 0, 1)
    Image.fromarray(np.round(reference * 255).astype(np.uint8)).save(folder / "average.png")
    Image.fromarray(np.round(np.clip(0.8 * reference + 0.05, 0, 1) * 255).astype(np.uint8)).save(folder / "scan.png")
    prepare_dataset([tmp_path / "src"], tmp_path / "out", PrepareOptions(val_fraction=0, test_fraction=0, reference="average"))
    table = reference_ceiling(open_dataset(tmp_path / "out"), "train")
    assert len(table) == 1
    row = table.iloc[0]
    assert row["consistency_db"] > 45.0
    assert abs(row["background_shift"]) < 0.5
    assert row["focus_kept"] == pytest.approx(1.0, abs=0.02)
