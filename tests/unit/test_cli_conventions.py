"""CLI conventions that hold for every command: documented options, messages that name real flags."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import typer

from oct_srgan.pipelines.cli import app
from tests.paths import REPO

# Advice a user cannot follow: a Python keyword argument instead of the CLI flag, or library advice
# passed through (pydicom's "Use force=True to force reading.").
UNFOLLOWABLE = re.compile(r"use overwrite|force=True|use force|overwrite=True", re.IGNORECASE)


def commands(command, path: tuple[str, ...] = ("oct-srgan",)) -> Iterator[tuple[str, object]]:
    yield " ".join(path), command
    for name, sub in getattr(command, "commands", {}).items():
        yield from commands(sub, path + (name,))


ALL = list(commands(typer.main.get_command(app)))


def test_every_stage_command_is_walked() -> None:
    names = {name for name, _ in ALL}
    assert {f"oct-srgan {c}" for c in ("preprocess", "train", "evaluate", "enhance", "serve", "ui", "chain")} <= names


@pytest.mark.parametrize("name,command", ALL, ids=[name for name, _ in ALL])
def test_every_option_and_argument_has_help(name: str, command) -> None:
    assert (command.help or "").strip(), f"{name}: command has no help"
    missing = [p.name for p in command.params if not (getattr(p, "help", None) or "").strip()]
    assert missing == [], f"{name}: parameters without help: {missing}"


def test_enhance_help_documents_output_file_and_suffix() -> None:
    enhance = dict(ALL)["oct-srgan enhance"]
    by_name = {p.name: p for p in enhance.params}
    assert "--suffix" in by_name["suffix"].opts and by_name["suffix"].default == "_sr"
    assert "file" in by_name["out"].help


def test_no_message_gives_advice_the_user_cannot_follow() -> None:
    offenders = []
    for folder in ("oct_srgan", "pipelines"):
        for path in sorted((REPO / folder).rglob("*.py")):
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                if UNFOLLOWABLE.search(line) and not line.lstrip().startswith("#"):
                    offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert offenders == []


@pytest.mark.parametrize("name", [name for name, _ in ALL])
def test_help_reads_flags_as_flags_and_arguments_by_name(name: str) -> None:
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, [*name.split()[1:], "--help"], prog_name="oct-srgan", terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output and "list[" not in result.output and "{" not in result.output
    if name == "oct-srgan enhance":
        assert "Usage: oct-srgan enhance [OPTIONS] INPUTS..." in result.output
        overwrite = next(line for line in result.output.splitlines() if "--overwrite" in line)
        assert overwrite.split("│")[1].split() == ["--overwrite", "Replace", "existing", "outputs."]
