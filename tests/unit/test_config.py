"""Typed config: YAML + overrides, unknown keys and wrong types refused with one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from oct_srgan.config import ConfigError, flatten, load_config, parse_override, to_dict


def test_override_sets_nested_typed_value() -> None:
    cfg = load_config(None, ["train.lr=1e-5", "model.norm=none", "loss.extractor.layers=[relu2_2]"])
    assert cfg.train.lr == pytest.approx(1e-5)
    assert cfg.model.norm == "none"
    assert cfg.loss.extractor.layers == ["relu2_2"]


def test_unknown_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match="unknown config key 'train.learning_rate'"):
        load_config(path)


def test_wrong_type_is_refused() -> None:
    with pytest.raises(ConfigError, match="train.batch_size: expected an integer"):
        load_config(None, ["train.batch_size=sixteen"])
    with pytest.raises(ConfigError, match="data.degradation.mode"):
        load_config(None, ["data.degradation.mode=lanczos"])


def test_extends_merges_parent(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("name: base\ntrain:\n  iterations: 10\n  lr: 0.001\n")
    (tmp_path / "child.yaml").write_text("extends: base.yaml\nname: child\ntrain:\n  iterations: 20\n")
    cfg = load_config(tmp_path / "child.yaml")
    assert (cfg.name, cfg.train.iterations, cfg.train.lr) == ("child", 20, 0.001)


def test_flatten_gives_dotted_params() -> None:
    flat = flatten(to_dict(load_config(None)))
    assert flat["train.lr"] == 1e-4
    assert flat["data.degradation"] is None  # the dataset owns the degradation
    assert flat["data.target"] == "auto"


def test_override_needs_equals() -> None:
    with pytest.raises(ConfigError, match="key=value"):
        parse_override("train.lr")


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_config_by_shipped_name_or_path_from_any_folder(tmp_path, monkeypatch) -> None:
    from oct_srgan.config import ConfigError, load_config, resolve_config

    monkeypatch.chdir(tmp_path)
    assert resolve_config("smoke").name == "smoke.yaml"
    assert load_config("smoke").name == load_config("smoke.yaml").name == "smoke"
    own = tmp_path / "mine.yaml"
    own.write_text("name: mine\n")
    assert load_config(own).name == "mine"
    with pytest.raises(ConfigError, match="no_such: config file not found .*smoke"):
        load_config("no_such")
