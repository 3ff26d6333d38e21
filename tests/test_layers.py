"""Who may import whom: the drivers never import the controller, the pure core never imports the
drivers, and the shared vocabulary imports neither (the district centre will import it too)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RULES = [  # (package, the top-level packages it must not import)
    ("vocabulary", {"controller", "drivers", "sim", "tests", "bench"}),
    ("drivers", {"controller", "sim", "tests", "bench"}),
    ("controller/core", {"drivers", "sim", "tests", "bench"}),
]


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package, forbidden", RULES, ids=[r[0] for r in RULES])
def test_a_package_imports_only_what_it_may(package, forbidden):
    wrong = {f"{p.relative_to(ROOT)}: {', '.join(sorted(imported(p) & forbidden))}"
             for p in (ROOT / package).rglob("*.py") if imported(p) & forbidden}
    assert not wrong
