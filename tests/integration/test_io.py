"""oct_srgan.io: real fixtures in every format, DICOM flavours, round trips, resized writes, bad input."""

from __future__ import annotations

import shutil
import subprocess

from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from monai.data import MetaTensor
from PIL import Image
from pydicom.uid import ExplicitVRLittleEndian, RLELossless

from oct_srgan.errors import ScanError
from oct_srgan.io import Geometry, Scan, find_scans, read_scan, scan_suffixes, write_scan
from oct_srgan.io.monai_reader import LoadScand
from tests.paths import BSCAN16_DCM, BSCAN16_PNG, DUKE_SAMPLE, FORMATS, VOLUME_DCM, VOLUME_NII

# name -> (B-scans, (H, W), bit depth)
FIXTURES = {
    "oct_volume_s14.dcm": (6, (450, 900), 8),
    "oct_bscan16_s14.dcm": (1, (450, 900), 16),
    "oct_volume_s14.nii.gz": (6, (450, 900), 8),
    "oct_bscan16_s14.png": (1, (450, 900), 16),
    "octdl_bscan_rgb_channel_first.nii.gz": (1, (512, 512), 32),
    "octdl_bscan_rgb_channel_last.nii.gz": (1, (256, 256), 32),
}


def layer_ratio(bscan: np.ndarray) -> float:
    """Variance of row means over variance of column means: large when layers run left-right."""
    return float(bscan.mean(axis=1).var() / bscan.mean(axis=0).var())


def upsample2(pixels: np.ndarray) -> np.ndarray:
    return np.repeat(np.repeat(pixels, 2, axis=1), 2, axis=2)


@pytest.fixture(scope="module")
def volume() -> Scan:
    return read_scan(VOLUME_DCM)


# ---------------------------------------------------------------------------------- real fixtures


def test_every_format_fixture_is_covered():
    assert sorted(p.name for p in FORMATS.iterdir()) == sorted(FIXTURES)


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_fixture_loads_as_upright_bscans(name):
    n, hw, bits = FIXTURES[name]
    scan = read_scan(FORMATS / name)
    assert scan.pixels.shape == (n, *hw)
    assert scan.pixels.dtype == np.float32
    assert scan.bit_depth == bits
    assert 0.0 <= scan.pixels.min() and scan.pixels.max() <= 1.0
    assert all(layer_ratio(b) > 10 for b in scan.pixels)


@pytest.mark.parametrize("name", ["oct_bscan16_s14.dcm", "oct_bscan16_s14.png"])
def test_16bit_fixtures_use_the_full_range(name):
    scan = read_scan(FORMATS / name)
    assert scan.pixels.max() > 0.95
    assert scan.bit_depth == 16


def test_volume_dicom_geometry_from_shared_functional_groups(volume):
    assert volume.source_format == "dicom"
    assert volume.photometric == "MONOCHROME2"
    assert volume.geometry.row_spacing == pytest.approx(0.0032)
    assert volume.geometry.col_spacing == pytest.approx(0.00667, rel=1e-3)
    assert volume.geometry.slice_spacing == pytest.approx(0.05)


def test_bscan16_dicom_geometry_from_top_level_pixel_spacing():
    scan = read_scan(BSCAN16_DCM)
    row, col = (float(v) for v in pydicom.dcmread(BSCAN16_DCM).PixelSpacing)
    assert (scan.geometry.row_spacing, scan.geometry.col_spacing) == (row, col)


def test_nifti_volume_matches_dicom_volume(volume):
    scan = read_scan(VOLUME_NII)
    assert scan.header.bscan_axis == 2
    assert scan.geometry.row_spacing == pytest.approx(0.0032)
    assert scan.geometry.col_spacing == pytest.approx(0.00667, rel=1e-3)
    assert scan.geometry.slice_spacing == pytest.approx(0.05)
    np.testing.assert_array_equal(scan.pixels, volume.pixels)


def test_png16_matches_dicom16():
    np.testing.assert_array_equal(read_scan(BSCAN16_PNG).pixels, read_scan(BSCAN16_DCM).pixels)


@pytest.mark.parametrize("name", ["octdl_bscan_rgb_channel_first.nii.gz", "octdl_bscan_rgb_channel_last.nii.gz"])
def test_octdl_colour_axis_is_reduced_to_luma(name):
    data = np.asarray(nib.load(FORMATS / name).dataobj)
    rgb = np.moveaxis(data, 0, -1) if data.shape[0] == 3 else data
    scan = read_scan(FORMATS / name)
    assert scan.photometric == "RGB"
    luma = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    np.testing.assert_allclose(scan.pixels[0], luma.T, atol=1e-6)


def test_nifti_bscan_axis_override():
    scan = read_scan(VOLUME_NII, bscan_axis=0)
    assert scan.pixels.shape == (900, 450, 6)
    assert scan.geometry.slice_spacing == pytest.approx(0.00667, rel=1e-3)


@pytest.mark.parametrize("path", DUKE_SAMPLE, ids=lambda p: f"{p.parent.name}-{p.stem}")
def test_duke_tiff(path):
    scan = read_scan(path)
    assert scan.pixels.shape == (1, 450, 900)
    assert scan.bit_depth == 8 and scan.source_format == "tiff"
    assert layer_ratio(scan.pixels[0]) > 10


# ---------------------------------------------------------------------------------- DICOM flavours


def _plain_frames() -> tuple[pydicom.Dataset, np.ndarray]:
    ds = pydicom.dcmread(VOLUME_DCM)
    return ds, ds.pixel_array.copy()


def _monochrome1(ds, frames):
    ds.PixelData = (255 - frames).astype(np.uint8).tobytes()
    ds.PhotometricInterpretation = "MONOCHROME1"


def _rle(ds, frames):
    ds.compress(RLELossless)


def _twelve_bit_rescaled(ds, frames):
    stored = np.rint(frames.astype(np.float64) * 4095 / 255).astype(np.uint16)
    ds.set_pixel_data(stored, "MONOCHROME2", 12, generate_instance_uid=False)
    ds.RescaleSlope, ds.RescaleIntercept = 0.5, -1024


def _rgb(ds, frames):
    ds.set_pixel_data(np.repeat(frames[..., None], 3, axis=-1), "RGB", 8, generate_instance_uid=False)


def _per_frame_spacing(ds, frames):
    measures = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence
    del ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence
    for item in ds.PerFrameFunctionalGroupsSequence:
        item.PixelMeasuresSequence = pydicom.Sequence([pydicom.Dataset(measures[0])])


VARIANTS = {
    "monochrome1": (_monochrome1, 0.0),
    "rle": (_rle, 0.0),
    "12bit_rescale": (_twelve_bit_rescaled, 0.5 / 4095),
    "rgb": (_rgb, 1e-6),
    "per_frame_spacing": (_per_frame_spacing, 0.0),
}


@pytest.fixture(scope="module")
def variant(tmp_path_factory):
    """Path of a flavour of oct_volume_s14.dcm, built once per module."""
    folder, made = tmp_path_factory.mktemp("variants"), {}

    def build(kind: str) -> Path:
        if kind not in made:
            ds, frames = _plain_frames()
            VARIANTS[kind][0](ds, frames)
            made[kind] = folder / f"{kind}.dcm"
            ds.save_as(made[kind], enforce_file_format=True)
        return made[kind]

    return build


@pytest.mark.parametrize("kind", sorted(VARIANTS))
def test_dicom_variant_gives_the_plain_pixels_and_geometry(kind, variant, volume):
    scan = read_scan(variant(kind))
    assert scan.pixels.shape == volume.pixels.shape
    assert np.abs(scan.pixels - volume.pixels).max() <= VARIANTS[kind][1]
    assert scan.geometry == volume.geometry


def test_rle_variant_is_really_compressed(variant):
    assert pydicom.dcmread(variant("rle")).file_meta.TransferSyntaxUID == RLELossless


# ---------------------------------------------------------------------------------- round trips


ROUND_TRIPS = {
    "volume.dcm": VOLUME_DCM,
    "bscan16.dcm": BSCAN16_DCM,
    "volume.nii.gz": VOLUME_NII,
    "bscan16.png": BSCAN16_PNG,
    "duke.tif": DUKE_SAMPLE[0],
    "octdl_first.nii.gz": FORMATS / "octdl_bscan_rgb_channel_first.nii.gz",
}


@pytest.mark.parametrize("name", sorted(ROUND_TRIPS))
def test_round_trip_is_lossless(name, tmp_path):
    scan = read_scan(ROUND_TRIPS[name])
    back = read_scan(write_scan(scan, tmp_path / name))
    if scan.pixels.dtype == np.float32 and scan.bit_depth == 32:
        np.testing.assert_allclose(back.pixels, scan.pixels, atol=1e-6)
    else:
        np.testing.assert_array_equal(back.pixels, scan.pixels)
    assert back.geometry == scan.geometry
    assert back.bit_depth == scan.bit_depth
    assert back.source_format == scan.source_format


@pytest.mark.parametrize("kind", ["monochrome1", "rle", "12bit_rescale"])
def test_dicom_variant_round_trip_keeps_stored_encoding(kind, variant, tmp_path):
    source = variant(kind)
    out = write_scan(read_scan(source), tmp_path / "out.dcm")
    before, after = pydicom.dcmread(source), pydicom.dcmread(out)
    assert after.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    for keyword in ("PhotometricInterpretation", "BitsAllocated", "BitsStored", "RescaleSlope", "RescaleIntercept"):
        assert after.get(keyword) == before.get(keyword)
    np.testing.assert_array_equal(after.pixel_array, before.pixel_array)


def test_rgb_dicom_is_written_as_monochrome2(variant, tmp_path):
    out = write_scan(read_scan(variant("rgb")), tmp_path / "out.dcm")
    ds = pydicom.dcmread(out)
    assert (ds.PhotometricInterpretation, ds.SamplesPerPixel, ds.BitsStored) == ("MONOCHROME2", 1, 8)
    np.testing.assert_array_equal(ds.pixel_array, pydicom.dcmread(VOLUME_DCM).pixel_array)


# ---------------------------------------------------------------------------------- resized writes


def test_resized_multiframe_dicom(volume, tmp_path):
    out = write_scan(volume.with_pixels(upsample2(volume.pixels)), tmp_path / "sr.dcm", derivation="x2 test")
    src, ds = volume.header, pydicom.dcmread(out)
    assert (ds.NumberOfFrames, ds.Rows, ds.Columns) == (6, 900, 1800)
    spacing = [float(v) for v in ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing]
    assert spacing == pytest.approx([0.0016, 0.0033335])
    assert ds.SOPInstanceUID != src.SOPInstanceUID
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert ds.SeriesInstanceUID != src.SeriesInstanceUID
    assert ds.StudyInstanceUID == src.StudyInstanceUID
    assert (ds.PatientName, ds.PatientID) == (src.PatientName, src.PatientID)
    assert list(ds.ImageType[:2]) == ["DERIVED", "SECONDARY"]
    derived = ds.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence[0]
    assert derived.DerivationDescription == "x2 test"
    assert derived.SourceImageSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID
    np.testing.assert_array_equal(ds.pixel_array, upsample2(src.pixel_array))


def test_derived_dicom_is_filed_as_its_own_named_series(volume, tmp_path):
    out = write_scan(volume.with_pixels(upsample2(volume.pixels)), tmp_path / "sr.dcm", derivation="x2 test")
    src, ds = volume.header, pydicom.dcmread(out)
    assert int(ds.SeriesNumber) != int(src.get("SeriesNumber") or 0) and int(ds.SeriesNumber) >= 1000
    assert "super-resolution" in ds.SeriesDescription and len(ds.SeriesDescription) <= 64


def _codes(items) -> list[tuple[str, str, str]]:
    return [(c.CodeValue, c.CodingSchemeDesignator, c.CodeMeaning) for c in items]


SPATIAL_RESAMPLING = ("113085", "DCM", "Spatial resampling")  # CID 7203 Image Derivation
SOURCE_FOR_PROCESSING = ("121322", "DCM", "Source image for image processing operation")  # CID 7202


def test_derived_single_frame_dicom_references_its_source_at_the_top_level(tmp_path):
    scan = read_scan(BSCAN16_DCM)
    out = write_scan(scan.with_pixels(upsample2(scan.pixels)), tmp_path / "sr.dcm", derivation="x2 test")
    src, ds = pydicom.dcmread(BSCAN16_DCM, stop_before_pixels=True), pydicom.dcmread(out, stop_before_pixels=True)
    assert list(ds.ImageType[:2]) == ["DERIVED", "SECONDARY"] and ds.DerivationDescription == "x2 test"
    assert _codes(ds.DerivationCodeSequence) == [SPATIAL_RESAMPLING]
    (ref,) = ds.SourceImageSequence
    assert (ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID) == (src.SOPClassUID, src.SOPInstanceUID)
    assert _codes(ref.PurposeOfReferenceCodeSequence) == [SOURCE_FOR_PROCESSING]
    assert ds.SOPInstanceUID != src.SOPInstanceUID and ds.SeriesInstanceUID != src.SeriesInstanceUID


def test_derived_multiframe_dicom_has_the_derivation_image_functional_group(volume, tmp_path):
    out = write_scan(volume.with_pixels(upsample2(volume.pixels)), tmp_path / "sr.dcm", derivation="x2 test")
    src, ds = volume.header, pydicom.dcmread(out, stop_before_pixels=True)
    for keyword in ("SourceImageSequence", "DerivationCodeSequence"):
        assert keyword not in ds  # not in the Ophthalmic Tomography IOD's top level
    assert ds.DerivationDescription == "x2 test"  # kept at the top level for viewers (a dciodvfy warning)
    assert "DerivationImageSequence" not in ds.SharedFunctionalGroupsSequence[0]
    for number, group in enumerate(ds.PerFrameFunctionalGroupsSequence, start=1):
        (item,) = group.DerivationImageSequence
        assert item.DerivationDescription == "x2 test"
        assert _codes(item.DerivationCodeSequence) == [SPATIAL_RESAMPLING]
        (ref,) = item.SourceImageSequence
        assert (ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID) == (src.SOPClassUID, src.SOPInstanceUID)
        assert int(ref.ReferencedFrameNumber) == number
        assert _codes(ref.PurposeOfReferenceCodeSequence) == [SOURCE_FOR_PROCESSING]
        assert group.PlanePositionSequence[0].ImagePositionPatient == \
            src.PerFrameFunctionalGroupsSequence[number - 1].PlanePositionSequence[0].ImagePositionPatient
    (series,) = ds.ReferencedSeriesSequence  # Common Instance Reference: where the source lives
    assert series.SeriesInstanceUID == src.SeriesInstanceUID
    assert series.ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID
    assert ds.SOPInstanceUID != src.SOPInstanceUID


def test_a_derived_dicom_derived_again_references_only_its_own_source(volume, tmp_path):
    first = read_scan(write_scan(volume.with_pixels(upsample2(volume.pixels)), tmp_path / "a.dcm", derivation="one"))
    ds = pydicom.dcmread(write_scan(first, tmp_path / "b.dcm", derivation="two"), stop_before_pixels=True)
    items = ds.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence
    assert len(items) == 1 and items[0].SourceImageSequence[0].ReferencedSOPInstanceUID == first.header.SOPInstanceUID


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy (Debian dicom3tools) not installed; scripts/test.sh installs it as root")
@pytest.mark.parametrize("source", [VOLUME_DCM, BSCAN16_DCM], ids=["multiframe-opt", "single-frame-sc"])
def test_derived_dicom_adds_no_dciodvfy_errors(source, tmp_path):
    def findings(path, kind):
        text = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True).stderr
        return {line.split(" - ", 1)[-1] for line in text.splitlines() if line.startswith(kind)}

    scan = read_scan(source)
    out = write_scan(scan.with_pixels(upsample2(scan.pixels)), tmp_path / "sr.dcm", derivation="x2 test")
    assert findings(out, "Error") <= findings(source, "Error")
    # The only new warning allowed: the top-level Derivation Description a functional-group IOD lacks.
    new_warnings = findings(out, "Warning") - findings(source, "Warning")
    assert all("Derivation Description" in w or "Standard Extended" in w for w in new_warnings), new_warnings


def test_resized_16bit_dicom_top_level_spacing(tmp_path):
    scan = read_scan(BSCAN16_DCM)
    ds = pydicom.dcmread(write_scan(scan.with_pixels(upsample2(scan.pixels)), tmp_path / "sr.dcm"))
    assert (ds.Rows, ds.Columns, ds.BitsAllocated, ds.BitsStored) == (900, 1800, 16, 16)
    assert [float(v) for v in ds.PixelSpacing] == pytest.approx([0.0016, 0.0033335])
    assert ds.PatientName == "Fixture^Jane"


def test_resized_nifti_updates_affine_and_zooms(tmp_path):
    scan = read_scan(VOLUME_NII)
    img = nib.load(write_scan(scan.with_pixels(upsample2(scan.pixels)), tmp_path / "sr.nii.gz"))
    assert img.shape == (1800, 900, 6)
    assert img.get_data_dtype() == np.uint8
    assert img.header.get_zooms() == pytest.approx((0.0066667 / 2, 0.0016, 0.05), rel=1e-4)
    np.testing.assert_allclose(np.diag(img.affine)[:3], (0.0066667 / 2, 0.0016, 0.05), rtol=1e-4)
    source = np.asarray(nib.load(VOLUME_NII).dataobj)
    np.testing.assert_array_equal(np.asarray(img.dataobj), np.repeat(np.repeat(source, 2, axis=0), 2, axis=1))


def test_resized_png_stays_16bit(tmp_path):
    scan = read_scan(BSCAN16_PNG)
    out = write_scan(scan.with_pixels(upsample2(scan.pixels)), tmp_path / "sr.png")
    with Image.open(out) as img:
        assert (img.mode, img.size) == ("I;16", (1800, 900))
        np.testing.assert_array_equal(np.asarray(img), upsample2(np.asarray(Image.open(BSCAN16_PNG))[None])[0])


def test_with_pixels_scales_spacing_and_keeps_the_original(volume):
    small = volume.with_pixels(volume.pixels[:, ::2, ::3])
    assert small.geometry == Geometry(pytest.approx(0.0064), pytest.approx(0.006667 * 3), 0.05)
    assert volume.pixels.shape == (6, 450, 900)


def test_with_pixels_clips_and_rejects_nan(volume):
    assert volume.with_pixels(volume.pixels * 2 - 0.5).pixels.max() == 1.0
    with pytest.raises(ScanError, match="NaN"):
        volume.with_pixels(np.full((6, 4, 4), np.nan))


def test_write_refuses_another_formats_suffix(volume, tmp_path):
    with pytest.raises(ScanError, match="cannot be written as png"):
        write_scan(volume, tmp_path / "x.png")
    assert not list(tmp_path.glob("*x*png*"))


# ---------------------------------------------------------------------------------- other inputs


def _duke_crop() -> np.ndarray:
    with Image.open(DUKE_SAMPLE[0]) as img:
        return np.asarray(img)[100:164, 200:328]


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "LA", "P"])
def test_colour_png_reduces_to_grey(mode, tmp_path):
    grey = _duke_crop()
    Image.fromarray(grey).convert(mode).save(tmp_path / "c.png")
    scan = read_scan(tmp_path / "c.png")
    assert scan.pixels.shape == (1, 64, 128) and scan.bit_depth == 8
    np.testing.assert_allclose(scan.pixels[0], grey / 255.0, atol=1 / 255 + 1e-6)


@pytest.mark.parametrize("suffix", [".bmp", ".jpg"])
def test_bmp_and_jpeg(suffix, tmp_path):
    grey = _duke_crop()
    Image.fromarray(grey).save(tmp_path / f"g{suffix}", quality=95)
    scan = read_scan(tmp_path / f"g{suffix}")
    tolerance = 1e-6 if suffix == ".bmp" else 0.02
    assert np.abs(scan.pixels[0] - grey / 255.0).mean() <= tolerance
    back = read_scan(write_scan(scan, tmp_path / f"out{suffix}"))
    assert np.abs(back.pixels - scan.pixels).mean() <= tolerance


# ---------------------------------------------------------------------------------- bad input


def _corrupt_dcm(path: Path) -> None:
    path.write_bytes(b"\0" * 128 + b"DICM" + b"\x07\x01garbage" * 20)


def _truncated_dcm(path: Path) -> None:
    path.write_bytes(VOLUME_DCM.read_bytes()[:200_000])


def _text_nii(path: Path) -> None:
    path.write_text("this is not an image\n")


BAD = {
    "corrupt.dcm": _corrupt_dcm,
    "truncated.dcm": _truncated_dcm,
    "empty.png": lambda p: p.write_bytes(b""),
    "text.nii.gz": _text_nii,
    "text.png": _text_nii,
    "notes.txt": _text_nii,
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_input_is_a_one_line_scan_error_naming_the_file(name, tmp_path):
    path = tmp_path / name
    BAD[name](path)
    with pytest.raises(ScanError) as info:
        read_scan(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message


# ---------------------------------------------------------------------------------- discovery, MONAI


def test_find_scans_recursive_sorted_by_suffix(tmp_path):
    (tmp_path / "b" / "deep").mkdir(parents=True)
    (tmp_path / ".hidden").mkdir()
    names = ["z.dcm", "b/deep/v.NII.GZ", "b/a.png", "c.tiff", "notes.txt", "b/deep/x.nii.json", ".hidden/h.png"]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "b" / "IM0001").write_bytes(VOLUME_DCM.read_bytes()[:2000])
    (tmp_path / "b" / "README").write_text("no preamble")
    found = find_scans([tmp_path])
    expected = ["IM0001", "a.png", "deep/v.NII.GZ"]
    assert [p.relative_to(tmp_path / "b").as_posix() for p in found[:3]] == expected
    assert [p.name for p in found[3:]] == ["c.tiff", "z.dcm"]
    assert ".nii.gz" in scan_suffixes() and ".dicom" in scan_suffixes()


def test_extensionless_dicom_reads(tmp_path):
    path = tmp_path / "IM0001"
    path.write_bytes(BSCAN16_DCM.read_bytes())
    assert read_scan(path).pixels.shape == (1, 450, 900)


def test_load_scand_gives_meta_tensor():
    out = LoadScand(keys="image")({"image": str(VOLUME_DCM), "label": 3})
    image = out["image"]
    assert isinstance(image, MetaTensor) and tuple(image.shape) == (6, 450, 900)
    assert image.meta["source_format"] == "dicom" and image.meta["bit_depth"] == 8
    np.testing.assert_allclose(np.asarray(image.meta["spacing"]), [0.05, 0.0032, 0.006667])
    assert out["label"] == 3
