"""The largest module, class and function in ``oct_srgan/`` (lines, from the AST), against the
limits maintainers agreed on: modules <= 400 lines, classes <= 200, functions <= 60.

    python bench/sizes.py            # prints the five largest of each and exits 1 over a limit
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "oct_srgan"
LIMITS = {"module": 400, "class": 200, "function": 60}


def measure(root: Path = PACKAGE) -> dict[str, list[tuple[int, str]]]:
    """Line counts per kind, largest first, as (lines, 'path[:name]')."""
    found: dict[str, list[tuple[int, str]]] = {kind: [] for kind in LIMITS}
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        rel = path.relative_to(root.parent).as_posix()
        found["module"].append((len(text.splitlines()), rel))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef):
                kind = "class"
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                kind = "function"
            else:
                continue
            found[kind].append((node.end_lineno - node.lineno + 1, f"{rel}:{node.name}"))
    return {kind: sorted(items, reverse=True) for kind, items in found.items()}


def main() -> int:
    over = 0
    for kind, items in measure().items():
        print(f"largest {kind.replace('class', 'classe')}s (limit {LIMITS[kind]} lines):")
        for lines, name in items[:5]:
            flag = "  OVER" if lines > LIMITS[kind] else ""
            print(f"  {lines:5d}  {name}{flag}")
        over += sum(lines > LIMITS[kind] for lines, _ in items)
    print(f"{over} over the limits")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
