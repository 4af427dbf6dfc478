"""The stage commands as the tests call them: in-process, no progress bars, on the CPU."""

from __future__ import annotations

from click.testing import Result
from typer.testing import CliRunner

from oct_srgan.pipelines.cli import app

runner = CliRunner()


def enhance(*args: str) -> Result:
    return runner.invoke(app, ["enhance", *args, "--no-progress", "--device", "cpu"])


def evaluate(*args: str) -> Result:
    return runner.invoke(app, ["evaluate", *args, "--no-progress", "--device", "cpu"])


def preprocess(*args: str) -> Result:
    return runner.invoke(app, ["preprocess", *args, "--no-progress"])


def one_error_line(result: Result) -> str:
    """The only line of a refused command's output (exit code 2), which starts with 'error: '."""
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]
