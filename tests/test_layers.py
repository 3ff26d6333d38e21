"""Who may import whom: the drivers never import the controller, the pure core never imports the
drivers, and the shared vocabulary imports neither; the district centre imports of the hall
only its shared event types (controller.core.events) and the vocabulary, and the hall never
imports the centre."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RULES = [  # (package, the top-level packages it must not import)
    ("vocabulary", {"controller", "drivers", "sim", "tests", "bench"}),
    ("drivers", {"controller", "sim", "tests", "bench"}),
    ("controller/core", {"drivers", "sim", "tests", "bench"}),
    ("center", {"drivers", "sim", "tests", "bench"}),
    ("controller", {"center"}),
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


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


# what the centre may take from the hall's package: the pure core (the event types the log is made
# of, the rules and figures the reports share: no I/O, by the core's own rule) and the hall's
# export words (the files' Chinese headers, pure too); never the runtime, the store, the web or
# the devices
CENTRE_MAY_IMPORT = ("controller.core", "controller.backoffice.export_words")


def centre_may_import(module: str) -> bool:
    return any(module == m or module.startswith(m + ".") for m in CENTRE_MAY_IMPORT)


def test_the_centre_takes_only_the_pure_core_and_the_export_words_from_the_hall():
    wrong = {f"{p.relative_to(ROOT)}: {m}" for p in (ROOT / "center").rglob("*.py")
             for m in imported_modules(p)
             if m.split(".")[0] == "controller" and not centre_may_import(m)}
    assert not wrong


def test_what_the_centre_takes_from_the_backoffice_imports_nothing_of_the_hall():
    words = ROOT / "controller" / "backoffice" / "export_words.py"
    assert not {m for m in imported_modules(words) if m.split(".")[0] in ("controller", "sqlite_utils")}
