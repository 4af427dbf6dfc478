"""Import a script of ``bench/`` (not a package) as a module, to test its functions."""

from __future__ import annotations

import importlib.util
from types import ModuleType

from tests.paths import REPO


def load_bench(name: str) -> ModuleType:
    """``bench/<name>.py`` as a module."""
    spec = importlib.util.spec_from_file_location(name, REPO / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module
