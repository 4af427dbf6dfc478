"""Hardening sweeps: corrupt, hostile and oversized inputs through every command; never a traceback.

Each case must fail with a specific one-line error (exit != 0), not the catch-all 'unexpected'.
Round one: truncated/garbled DICOM, PNG, TIFF, NIfTI; bomb headers per format; corrupt dataset
files; corrupt/foreign/pickled checkpoints; unwritable and full (simulated ENOSPC) output.
Round two: output folders that are, contain or lie inside an input (never a deleted scan),
enhance never re-enhancing its own outputs, and the cases that follow them below. Option values,
SIGTERM while parsing and exposed hosts are in tests/unit/test_hardening_cli.py; train stopped by a
signal in tests/integration/test_training.py.
"""

from __future__ import annotations

import errno
import gzip
import json
import shutil
import struct
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import tifffile
import torch
from PIL import Image
from typer.testing import CliRunner

from oct_srgan.io import raster as scan_io
from oct_srgan.prepare import PrepareOptions, prepare_dataset
from oct_srgan.pipelines.cli import app
from tests.helpers.scans import bomb_png
from tests.paths import DUKE, FORMATS, SMOKE

DUKE_TIF = DUKE / "subject14" / "1.tif"
TINY = ["model.channels=8", "model.num_blocks=1", "data.hr_crop=32", "data.num_workers=0", "train.batch_size=2",
        "train.iterations=1", "train.device=cpu", "tracking.register_model=false"]


def _patch_tiff_size(path: Path, side: int) -> None:
    with tifffile.TiffFile(path) as tif:
        tags = tif.pages[0].tags
        spots = [(tags[name].valueoffset, tags[name].dtype) for name in ("ImageWidth", "ImageLength")]
    with path.open("r+b") as fh:
        for offset, dtype in spots:
            fh.seek(offset)
            fh.write(struct.pack("<H" if int(dtype) == 3 else "<I", side))


def make_scans(root: Path) -> dict[str, Path]:
    """One file per corrupt or bomb case (tiny files)."""
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    cases: dict[str, Path] = {}

    def put(name: str, data: bytes) -> None:
        (root / name).write_bytes(data)
        cases[name] = root / name

    put("truncated.png", (FORMATS / "oct_bscan16_s14.png").read_bytes()[:3000])
    put("garbled.png", b"\x89PNG\r\n\x1a\n" + rng.bytes(2000))
    put("truncated.tif", DUKE_TIF.read_bytes()[:3000])
    put("garbled.tif", b"II*\x00" + rng.bytes(2000))
    put("truncated.nii.gz", (FORMATS / "oct_volume_s14.nii.gz").read_bytes()[:3000])
    put("garbled.nii", struct.pack("<i", 348) + rng.bytes(600))
    put("empty.nii.gz", b"")
    nib.Nifti1Image(np.zeros((64, 64, 0), np.uint8), np.eye(4)).to_filename(root / "no_bscans.nii.gz")
    cases["no_bscans.nii.gz"] = root / "no_bscans.nii.gz"
    put("truncated.dcm", (FORMATS / "oct_volume_s14.dcm").read_bytes()[:5000])
    put("garbled.dcm", b"\0" * 128 + b"DICM" + rng.bytes(2000))
    put("bomb.png", bomb_png(12000, 12000))
    tifffile.imwrite(root / "bomb.tif", np.zeros((8, 8), np.uint8))
    _patch_tiff_size(root / "bomb.tif", 20000)
    cases["bomb.tif"] = root / "bomb.tif"
    Image.new("L", (8, 8)).save(root / "bomb.bmp")
    bmp = bytearray((root / "bomb.bmp").read_bytes())
    bmp[18:26] = struct.pack("<ii", 20000, 20000)
    put("bomb.bmp", bytes(bmp))
    header = nib.Nifti1Header()
    header.set_data_shape((4096, 4096, 64))
    header.set_data_dtype(np.uint8)
    header["vox_offset"] = 352
    put("bomb.nii.gz", gzip.compress(header.binaryblock + b"\0" * 4 + b"\0" * 4096))
    ds = pydicom.dcmread(FORMATS / "oct_volume_s14.dcm")
    ds.Rows, ds.Columns, ds.NumberOfFrames = 8000, 8000, 64
    ds.save_as(root / "bomb.dcm")
    cases["bomb.dcm"] = root / "bomb.dcm"
    return cases


def make_checkpoints(root: Path) -> dict[str, Path]:
    root.mkdir(parents=True)
    (root / "corrupt.pt").write_bytes(b"PK\x03\x04" + b"\0" * 200)
    torch.save({"weights": torch.zeros(3)}, root / "foreign.pt")
    torch.save({"generator": Path("x"), "step": 1, "model_spec": {}}, root / "pickled.pt")
    return {p.name: p for p in root.iterdir()}


def make_datasets(root: Path) -> dict[str, Path]:
    """A valid tiny dataset, then copies with one corruption each."""
    src = root / "src"
    for i, group in enumerate("abc"):
        (src / group).mkdir(parents=True)
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (64, 64), dtype=np.uint8)).save(src / group / "s.png")
    good = root / "good"
    prepare_dataset([src], good, PrepareOptions(val_fraction=0.34, test_fraction=0.34))
    cases = {}

    def variant(name: str) -> Path:
        cases[name] = shutil.copytree(good, root / name)
        return cases[name]

    (variant("json_list") / "dataset.json").write_text("[]")
    info = json.loads((good / "dataset.json").read_text())
    del info["dataset_hash"]
    (variant("no_hash") / "dataset.json").write_text(json.dumps(info))
    (variant("manifest_garbage") / "manifest.csv").write_bytes(b"\x00\xff garbage\n")
    for split, column in (("test", "lr_path"), ("train", "hr_path")):
        ds = variant(f"truncated_{split}_{column}")
        manifest = (ds / "manifest.csv").read_text().splitlines()
        cols = manifest[0].split(",")
        row = next(r.split(",") for r in manifest[1:] if r.split(",")[cols.index("split")] == split)
        png = ds / row[cols.index(column)]
        png.write_bytes(png.read_bytes()[:200])
    return cases


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Path]]:
    root = tmp_path_factory.mktemp("sweep")
    return {"scans": make_scans(root / "scans"), "checkpoints": make_checkpoints(root / "ckpt"),
            "datasets": make_datasets(root / "ds")}


def cases(inputs: dict[str, dict[str, Path]], tmp: Path, model: Path) -> list[tuple[str, list[str]]]:
    table = []
    for name, path in inputs["scans"].items():
        table.append((f"enhance {name}", ["enhance", str(path), "-o", str(tmp / f"e-{name}"), "--model", str(model)]))
        table.append((f"preprocess {name}", ["preprocess", str(path), "-o", str(tmp / f"p-{name}")]))
    for name, path in inputs["checkpoints"].items():
        scan = str(FORMATS / "oct_bscan16_s14.png")
        table.append((f"enhance --model {name}", ["enhance", scan, "-o", str(tmp / f"m-{name}"), "--model", str(path)]))
        table.append((f"serve --model {name}", ["serve", "--model", str(path), "--port", "0"]))
        table.append((f"train init_from {name}", ["train", "-c", str(SMOKE), "-d", str(inputs["datasets"]["no_hash"].parent / "good"),
                                                  "-o", str(tmp / f"t-{name}"), *sum((["--set", s] for s in [*TINY, "train.stage=srgan", f"train.init_from={path}", "loss.extractor.name=discriminator", "loss.extractor.layers=[]"]), [])]))
    for name, path in inputs["datasets"].items():
        if "train_hr" not in name:
            table.append((f"evaluate {name}", ["evaluate", "--data", str(path), "--model", str(model), "-o", str(tmp / f"v-{name}"), "--no-progress"]))
        if "test_lr" in name:
            continue
        table.append((f"train {name}", ["train", "-c", str(SMOKE), "-d", str(path), "-o", str(tmp / f"tr-{name}"), "--no-progress",
                                        *sum((["--set", s] for s in TINY), [])]))
    blocker = tmp / "not-a-folder"
    blocker.write_text("x")
    table.append(("enhance into a file", ["enhance", str(FORMATS / "oct_bscan16_s14.png"), "-o", str(blocker), "--model", str(model)]))
    return table


def test_no_traceback_for_any_corrupt_input(inputs, tmp_path: Path, tiny_generator_file: Path) -> None:
    runner = CliRunner()
    failures = []
    table = cases(inputs, tmp_path, tiny_generator_file)
    for label, args in table:
        result = runner.invoke(app, args)
        text = result.output + (repr(result.exception) if result.exception and not isinstance(result.exception, SystemExit) else "")
        if "Traceback" in text or "unexpected" in text or result.exit_code == 0 or not isinstance(result.exception, (SystemExit, type(None))):
            failures.append(f"{label}: exit {result.exit_code}: {text.strip()[-300:]}")
        elif not any(line.startswith("error: ") for line in result.output.splitlines()):
            failures.append(f"{label}: no one-line error: {result.output.strip()[-300:]}")
    assert not failures, f"{len(failures)} of {len(table)} cases:\n" + "\n".join(failures)


def test_full_disk_in_every_writing_command_is_one_line(inputs, tmp_path: Path, tiny_generator_file: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(scan_io, "_write_raster", disk_full)
    monkeypatch.setattr(Image.Image, "save", disk_full)
    runner = CliRunner()
    png = str(FORMATS / "oct_bscan16_s14.png")
    for args in (["enhance", png, "-o", str(tmp_path / "e"), "--model", str(tiny_generator_file)],
                 ["preprocess", png, "-o", str(tmp_path / "p")]):
        result = runner.invoke(app, args)
        assert result.exit_code != 0 and "Traceback" not in result.output, result.output
        assert "No space left on device" in result.output
        assert not (tmp_path / args[3]).exists() or not any((tmp_path / args[3]).iterdir())


def _scan_folder(root: Path, names: tuple[str, ...] = ("a", "b")) -> dict[Path, bytes]:
    """Small 8-bit PNG scans under ``root`` plus an unrelated file; their bytes, to prove none was lost."""
    root.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        (root / name).mkdir(exist_ok=True)
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (32, 40), dtype=np.uint8)).save(root / name / "s.png")
    (root / "notes.txt").write_text("keep me")
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


OVERLAPS = [("scans", "scans"), ("data/scans", "data"), (".", "."), ("scans", "scans/out")]


@pytest.mark.parametrize(("source", "out"), OVERLAPS)
def test_preprocess_never_replaces_an_input_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   source: str, out: str) -> None:
    monkeypatch.chdir(tmp_path)
    before = _scan_folder(tmp_path / source)
    result = CliRunner().invoke(app, ["preprocess", source, "--out", out, "--overwrite", "--no-progress"])
    assert result.exit_code == 2 and "unexpected" not in result.output, result.output
    assert result.output.startswith("error: ") and "input" in result.output
    assert {p: p.read_bytes() for p in before} == before


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_train_and_evaluate_refuse_an_output_folder_that_is_the_dataset(inputs, command: str,
                                                                        tiny_generator_file: Path) -> None:
    data = inputs["datasets"]["no_hash"].parent / "good"
    before = {p: p.read_bytes() for p in data.rglob("*") if p.is_file()}
    args = (["train", "-c", str(SMOKE), "-d", str(data), "-o", str(data), "--overwrite", *sum((["--set", s] for s in TINY), [])]
            if command == "train" else
            ["evaluate", "--data", str(data), "--model", str(tiny_generator_file), "-o", str(data), "--overwrite"])
    result = CliRunner().invoke(app, [*args, "--no-progress"])
    assert result.exit_code == 2 and result.output.startswith("error: ") and "input" in result.output, result.output
    assert {p: p.read_bytes() for p in before} == before


@pytest.mark.parametrize("out", ["scans/enhanced", None])
def test_enhance_twice_never_enhances_its_own_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     tiny_generator_file: Path, out: str | None) -> None:
    _scan_folder(tmp_path / "scans", ("a",))
    monkeypatch.chdir(tmp_path / "scans" if out is None else tmp_path)
    source = "." if out is None else "scans"
    args = ["enhance", source, "--model", str(tiny_generator_file), "--no-progress", "--device", "cpu",
            *([] if out is None else ["-o", out])]
    first, second = CliRunner().invoke(app, args), CliRunner().invoke(app, [*args, "--overwrite"])
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    written = sorted(p.name for p in (tmp_path / "scans" / "enhanced").iterdir())
    assert written == ["s_sr.png"], written
    assert "_sr_sr" not in second.output


def test_enhance_refuses_the_input_folder_as_output(tmp_path: Path, tiny_generator_file: Path) -> None:
    before = _scan_folder(tmp_path / "scans")
    result = CliRunner().invoke(app, ["enhance", str(tmp_path / "scans"), "-o", str(tmp_path / "scans"),
                                      "--model", str(tiny_generator_file), "--no-progress"])
    assert result.exit_code == 2 and result.output.startswith("error: ") and "input folder" in result.output, result.output
    assert {p for p in (tmp_path / "scans").rglob("*") if p.is_file()} == set(before)




def _served(tmp_path: Path, **options):  # type: ignore[no-untyped-def]
    from oct_srgan import serving
    from tests.helpers.serving import tiny_model

    return serving.create_app(tiny_model(tmp_path / "tiny.pt"), tile=0, **options)


def _png(seed: int, side: int = 24) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (side, side), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def test_serve_full_refuses_before_reading_the_body_and_ids_say_nothing(tmp_path: Path) -> None:
    import hashlib
    import http.client
    import urllib.parse

    from oct_srgan import serving
    from tests.helpers.serving import call, upload

    web_app = _served(tmp_path)
    with serving.background(web_app) as base:
        data = _png(0)
        ids = [upload(base, data)[1]["id"] for _ in range(serving.MAX_SCANS)]
        assert len(set(ids)) == serving.MAX_SCANS and hashlib.sha256(data).hexdigest() not in ids
        assert call(base, "GET", f"/api/scans/{hashlib.sha256(data).hexdigest()}")[0] == 404
        url = urllib.parse.urlsplit(base)
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
        conn.putrequest("POST", "/api/scans")
        conn.putheader("Content-Type", "application/octet-stream")
        conn.putheader("Content-Length", str(15 * 2**20))
        conn.endheaders()  # no body is ever sent: the answer must not wait for it
        response = conn.getresponse()
        assert response.status == 429
        conn.close()
        assert sorted(p.name for p in web_app.state.service.workdir.iterdir()) == sorted(f"{i}.png" for i in ids)
        big = "9" * 5000
        assert call(base, "GET", f"/api/scans/{ids[0]}/metrics/{big}")[0] == 404


def test_serve_finished_results_outlive_other_users_uploads(tmp_path: Path) -> None:
    from oct_srgan import serving
    from tests.helpers.serving import call, upload, wait_done

    web_app = _served(tmp_path, keep_s=(600.0, 0.0))
    with serving.background(web_app) as base:
        mine = [upload(base, _png(i))[1]["id"] for i in range(2)]
        for scan_id in mine:
            assert call(base, "POST", f"/api/scans/{scan_id}/process?mode=enhance")[0] == 202
            assert wait_done(base, scan_id)["state"] == "done"
        answers = [upload(base, _png(100 + i))[0] for i in range(serving.MAX_SCANS)]
        assert set(answers) <= {200, 429}  # newer uploads may evict each other, never a finished result in its grace
        assert all(call(base, "GET", f"/api/scans/{i}/download")[0] == 200 for i in mine)


def test_serve_check_by_one_user_never_cancels_anothers_enhance(tmp_path: Path) -> None:
    from oct_srgan import serving
    from tests.helpers.serving import call, upload, wait_done

    with serving.background(_served(tmp_path)) as base:
        data = _png(7, 64)
        a, b = upload(base, data)[1]["id"], upload(base, data)[1]["id"]
        assert call(base, "POST", f"/api/scans/{a}/process?mode=enhance")[0] == 202
        assert call(base, "POST", f"/api/scans/{b}/process?mode=check")[0] == 202
        assert wait_done(base, a)["state"] == "done" and wait_done(base, b)["state"] == "done"


@pytest.mark.parametrize(("change", "expected"), [
    ({"model_spec": {"channels": 200000}}, "shape"), ({"model_spec": [1]}, "model_spec is a list"),
    ({"state_dict": "x"}, "state_dict is a str"), ({"meta": "x"}, "meta is a str"),
])
def test_model_file_spec_is_checked_against_its_weights_first(tmp_path: Path, tiny_generator_file: Path,
                                                              change: dict, expected: str) -> None:
    import resource

    state = torch.load(tiny_generator_file, weights_only=True)
    if isinstance(change.get("model_spec"), dict):
        change = {"model_spec": {**state["model_spec"], **change["model_spec"]}}
    torch.save({**state, **change}, tmp_path / "g.pt")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = CliRunner().invoke(app, ["enhance", str(FORMATS / "oct_bscan16_s14.png"), "-o", str(tmp_path / "o"),
                                      "--model", str(tmp_path / "g.pt"), "--no-progress"])
    assert result.exit_code == 2 and expected in result.output and "unexpected" not in result.output, result.output
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024  # KiB: no 1.85 GB net built


def test_jpeg_exif_orientation_is_applied(tmp_path: Path, tiny_generator_file: Path) -> None:
    from oct_srgan.io import read_scan

    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown rotated 90 degrees clockwise
    stored = np.tile(np.linspace(0, 255, 40, dtype=np.uint8), (24, 1))
    Image.fromarray(stored).save(tmp_path / "phone.jpg", exif=exif.tobytes(), quality=95)
    scan = read_scan(tmp_path / "phone.jpg")
    assert scan.pixels.shape == (1, 40, 24) and scan.header.info.get("exif_orientation_applied")
    result = CliRunner().invoke(app, ["enhance", str(tmp_path / "phone.jpg"), "-o", str(tmp_path / "o"),
                                      "--model", str(tiny_generator_file), "--no-progress"])
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "o" / "phone_sr.jpg") as out:
        assert out.size == (96, 160) and out.getexif().get(0x0112, 1) == 1


def test_serve_truncated_uploads_are_one_line_and_leave_nothing(tmp_path: Path) -> None:
    import http.client
    import socket
    import urllib.parse

    from oct_srgan import serving
    from tests.helpers.serving import upload

    web_app = _served(tmp_path)
    with serving.background(web_app) as base:
        status, body = upload(base, (FORMATS / "oct_bscan16_s14.png").read_bytes()[:3000])
        assert status == 400 and "truncated" in body["error"] and "\n" not in body["error"], body
        url = urllib.parse.urlsplit(base)
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
        conn.putrequest("POST", "/api/scans")
        conn.putheader("Content-Type", "application/octet-stream")
        conn.putheader("Content-Length", "100000")
        conn.endheaders()
        conn.send(_png(1, 64)[:500])
        conn.sock.shutdown(socket.SHUT_WR)  # the client gives up half-way
        try:
            answer = conn.getresponse().status
        except (http.client.RemoteDisconnected, ConnectionError):
            answer = None  # the server may just drop a request whose body never came
        conn.close()
        assert answer in (None, 400), answer
        time.sleep(0.5)
        assert list(web_app.state.service.workdir.iterdir()) == []
