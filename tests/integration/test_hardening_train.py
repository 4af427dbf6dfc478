"""Issue 9, train: refused and locked run folders, crash leftovers, corrupt checkpoints, NaN stops."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from oct_srgan import checkpoint, training
from oct_srgan.errors import OctSrganError, TrainingError
from oct_srgan.fsutil import exclusive_dir
from tests.helpers.store import module_store, store_uri  # noqa: F401
from tests.helpers.training import one_thread, tiny  # noqa: F401


def test_non_empty_out_is_refused_unless_resume_or_overwrite(patch_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    training.train(tiny("train.iterations=4", "train.checkpoint_interval=2"), patch_data, out, progress=False)
    with pytest.raises(TrainingError, match="not empty"):
        training.train(tiny("train.iterations=2"), patch_data, out, progress=False)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_0000002.pt", "step_0000004.pt"]
    result = training.train(tiny("train.iterations=2"), patch_data, out, progress=False, overwrite=True)
    assert result.checkpoint_path.is_file()
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_0000002.pt"]


def test_second_run_on_a_locked_folder_stops_in_one_line(patch_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with exclusive_dir(out, "training run"):
        with pytest.raises(OctSrganError) as info:
            training.train(tiny("train.iterations=2"), patch_data, out, progress=False)
    assert "another training run is using this folder" in str(info.value) and "\n" not in str(info.value)
    assert not (out / "checkpoints").exists()


def test_resume_skips_a_corrupt_newest_checkpoint_and_removes_stale_temps(
    patch_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out"
    cfg = tiny("train.iterations=4", "train.checkpoint_interval=2")
    training.train(cfg, patch_data, out, progress=False)
    newest = out / "checkpoints" / "step_0000004.pt"
    newest.write_bytes(newest.read_bytes()[:1000])
    stale = out / "checkpoints" / ".step_0000006.abc.tmp.pt"
    stale.write_bytes(b"half")
    result = training.train(tiny("train.iterations=6", "train.checkpoint_interval=2"), patch_data, out, resume=True,
                            progress=False)
    assert result.step == 6 and not stale.exists()
    err = capsys.readouterr().err
    assert "step_0000004.pt" in err and "resuming from" in err and "step_0000002.pt" in err


def test_nan_stop_names_a_checkpoint_whose_weights_give_finite_output(
    patch_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}
    step = training.train_step

    def explode_after_second_step(nets, *args, **kwargs):  # the optimiser step 2 blows the weights up
        calls["n"] += 1
        result = step(nets, *args, **kwargs)
        if calls["n"] == 2:
            with torch.no_grad():
                for p in nets.generator.parameters():
                    p.fill_(1e30)
        return result

    monkeypatch.setattr(training, "train_step", explode_after_second_step)
    with pytest.raises(TrainingError) as info:
        training.train(tiny("train.iterations=10", "train.checkpoint_interval=1"), patch_data, tmp_path / "o",
                       progress=False)
    named = Path(str(info.value).rsplit("last good checkpoint: ", 1)[1])
    state = checkpoint.load_checkpoint(named)
    assert state["step"] == 1
    assert all(v.abs().max() < 1e6 for v in state["generator"].values() if v.is_floating_point())
