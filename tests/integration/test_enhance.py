"""`oct-srgan enhance` on the real scans: every shared format written back in its own format with 4x geometry."""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from PIL import Image

from oct_srgan.checkpoint import save_generator_file
from oct_srgan.models import srresnet
from tests.helpers.cli import enhance, one_error_line
from tests.paths import DUKE, FORMATS


@pytest.fixture(scope="module")
def enhanced_formats(tmp_path_factory: pytest.TempPathFactory, tiny_generator_file: Path) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("enhanced")
    result = enhance(str(FORMATS), "-o", str(out), "--model", str(tiny_generator_file))
    return out, result.output


@pytest.mark.slow
def test_every_format_is_written(enhanced_formats: tuple[Path, str]) -> None:
    out, output = enhanced_formats
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        [
            "oct_bscan16_s14_sr.dcm",
            "oct_bscan16_s14_sr.png",
            "oct_volume_s14_sr.dcm",
            "oct_volume_s14_sr.nii.gz",
            "octdl_bscan_rgb_channel_first_sr.nii.gz",
            "octdl_bscan_rgb_channel_last_sr.nii.gz",
        ]
    ), output
    assert "6 scan(s) enhanced x4" in output


@pytest.mark.slow
def test_multiframe_dicom_geometry_uids_and_patient_tags(enhanced_formats: tuple[Path, str]) -> None:
    out, _ = enhanced_formats
    src = pydicom.dcmread(FORMATS / "oct_volume_s14.dcm")
    dst = pydicom.dcmread(out / "oct_volume_s14_sr.dcm")
    assert (dst.Rows, dst.Columns, int(dst.NumberOfFrames)) == (src.Rows * 4, src.Columns * 4, 6)
    assert dst.pixel_array.shape == (6, 1800, 3600)
    assert (dst.BitsAllocated, dst.BitsStored, dst.PhotometricInterpretation) == (
        src.BitsAllocated,
        src.BitsStored,
        src.PhotometricInterpretation,
    )
    src_spacing = [float(v) for v in src.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing]
    dst_spacing = [float(v) for v in dst.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing]
    np.testing.assert_allclose(dst_spacing, [s / 4 for s in src_spacing], rtol=1e-4)
    assert dst.SOPInstanceUID != src.SOPInstanceUID
    assert dst.file_meta.MediaStorageSOPInstanceUID == dst.SOPInstanceUID
    assert dst.SeriesInstanceUID != src.SeriesInstanceUID
    assert dst.SOPClassUID == src.SOPClassUID
    for tag in ("PatientName", "PatientID", "StudyInstanceUID"):
        assert dst.get(tag) == src.get(tag)
    assert "DERIVED" in list(dst.ImageType)


@pytest.mark.slow
def test_single_frame_16bit_dicom_spacing(enhanced_formats: tuple[Path, str]) -> None:
    out, _ = enhanced_formats
    src = pydicom.dcmread(FORMATS / "oct_bscan16_s14.dcm")
    dst = pydicom.dcmread(out / "oct_bscan16_s14_sr.dcm")
    assert dst.pixel_array.shape == (1800, 3600) and dst.pixel_array.dtype == np.uint16
    np.testing.assert_allclose([float(v) for v in dst.PixelSpacing], [float(v) / 4 for v in src.PixelSpacing], rtol=1e-4)
    assert dst.BitsStored == src.BitsStored and dst.SOPInstanceUID != src.SOPInstanceUID
    assert dst.PatientName == src.PatientName


@pytest.mark.slow
def test_nifti_volume_affine_scaled(enhanced_formats: tuple[Path, str]) -> None:
    out, _ = enhanced_formats
    src = nib.load(FORMATS / "oct_volume_s14.nii.gz")
    dst = nib.load(out / "oct_volume_s14_sr.nii.gz")
    assert dst.shape == (3600, 1800, 6)
    assert dst.get_data_dtype() == src.get_data_dtype()
    np.testing.assert_allclose(dst.header.get_zooms(), np.array(src.header.get_zooms()) / [4, 4, 1], rtol=1e-5)
    np.testing.assert_allclose(np.abs(np.diag(dst.affine)[:3]), np.abs(np.diag(src.affine)[:3]) / [4, 4, 1], rtol=1e-5)


@pytest.mark.slow
def test_nifti_colour_axis_files_keep_layout(enhanced_formats: tuple[Path, str]) -> None:
    out, _ = enhanced_formats
    first = nib.load(out / "octdl_bscan_rgb_channel_first_sr.nii.gz")
    last = nib.load(out / "octdl_bscan_rgb_channel_last_sr.nii.gz")
    assert first.shape == (3, 2048, 2048)
    assert last.shape == (1024, 1024, 3)


@pytest.mark.slow
def test_png16_keeps_bit_depth(enhanced_formats: tuple[Path, str]) -> None:
    out, _ = enhanced_formats
    with Image.open(out / "oct_bscan16_s14_sr.png") as img:
        arr = np.asarray(img)
        assert img.size == (3600, 1800)
    assert arr.dtype == np.uint16 and arr.max() > 255


def test_model_file_that_is_not_a_checkpoint(tmp_path: Path) -> None:
    fake = tmp_path / "model.pt"
    fake.write_bytes(os.urandom(1000))
    result = enhance(str(DUKE / "subject01" / "1.tif"), "-o", str(tmp_path / "o"), "--model", str(fake))
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "model.pt" in lines[0]


def test_model_for_other_channel_count_is_refused(tmp_path: Path) -> None:
    g = srresnet(in_channels=2, channels=8, num_blocks=1)
    path = tmp_path / "two.pt"
    save_generator_file(path, g.state_dict(), g.spec, {})
    result = enhance(str(DUKE / "subject01" / "1.tif"), "-o", str(tmp_path / "o"), "--model", str(path))
    assert result.exit_code == 2
    last = result.output.splitlines()[-1]
    assert last.startswith("error: ") and "channels" in last


def test_unwritable_output_folder(tmp_path: Path, tiny_generator_file: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = enhance(str(DUKE / "subject01" / "1.tif"), "-o", str(blocker / "sub"), "--model", str(tiny_generator_file))
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1 and "error: " in result.output


def test_tiled_output_is_seamless_on_a_real_bscan(tiny_generator_file: Path) -> None:
    from oct_srgan.inference import super_resolve
    from oct_srgan.io import read_scan
    from oct_srgan.loading import load_model

    g = load_model(tiny_generator_file).module
    lr = torch.from_numpy(read_scan(DUKE / "subject02" / "average.tif").pixels[:, :112, :225].copy())[:, None]
    tiled = super_resolve(g, lr, scale=4, tile=48, overlap=24)
    whole = super_resolve(g, lr, scale=4, tile=None)
    assert (tiled - whole).abs().max() < 1e-3


@pytest.fixture()
def small_dicom(tmp_path: Path) -> Path:
    """A 30x40 single-frame DICOM with the real fixture's header (fast to enhance)."""
    from oct_srgan.io import read_scan, write_scan

    scan = read_scan(FORMATS / "oct_bscan16_s14.dcm")
    return write_scan(scan.with_pixels(scan.pixels[:, 200:230, 400:440]), tmp_path / "in" / "small.dcm")


def test_output_file_name_writes_exactly_that_file(small_dicom: Path, tmp_path: Path, tiny_generator_file: Path) -> None:
    target = tmp_path / "out.dcm"
    result = enhance(str(small_dicom), "-o", str(target), "--model", str(tiny_generator_file), "--compare")
    assert result.exit_code == 0, result.output
    assert target.is_file() and pydicom.dcmread(target).pixel_array.shape == (120, 160)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "mlruns", "out.dcm", "out_compare.png"]
    assert f"-> {target}" in result.output


def test_output_file_name_is_refused_for_several_inputs_or_a_folder(small_dicom: Path, tmp_path: Path,
                                                                    tiny_generator_file: Path) -> None:
    other = small_dicom.parent / "other.dcm"
    other.write_bytes(small_dicom.read_bytes())
    target = tmp_path / "out.dcm"
    line = one_error_line(enhance(str(small_dicom), str(other), "-o", str(target), "--model", str(tiny_generator_file)))
    assert "2 inputs" in line and "folder" in line
    line = one_error_line(enhance(str(small_dicom.parent), "-o", str(target), "--model", str(tiny_generator_file)))
    assert "the input is a folder" in line
    assert not target.exists()


def test_output_file_extension_must_match_the_input_format(small_dicom: Path, tmp_path: Path,
                                                           tiny_generator_file: Path) -> None:
    line = one_error_line(enhance(str(small_dicom), "-o", str(tmp_path / "out.png"), "--model", str(tiny_generator_file)))
    assert "out.png" in line and "png" in line and "dicom" in line
    assert not (tmp_path / "out.png").exists()


def test_existing_folder_named_like_a_file_is_still_a_folder(small_dicom: Path, tmp_path: Path,
                                                             tiny_generator_file: Path) -> None:
    folder = tmp_path / "looks.dcm"
    folder.mkdir()
    assert enhance(str(small_dicom), "-o", str(folder), "--model", str(tiny_generator_file)).exit_code == 0
    assert [p.name for p in folder.iterdir()] == ["small_sr.dcm"]
