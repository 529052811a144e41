"""The import contract of the rooms (.importlinter) catches an import that runs the wrong way.

`make test` runs lint-imports on the real tree; these tests run the same
contract on a stand-in tree with one room per package, so they show that each
rule fails when it is broken, and holds when it is not.
"""
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOMS = ("common", "datagen", "components", "pipeline", "serving", "engine", "ledger", "monitor", "cli")
LINT_IMPORTS = os.path.join(os.path.dirname(sys.executable), "lint-imports")


def lint(tree, imports):
    """lint-imports with the repository's contract on a tree where `imports` = {room: [room]}."""
    for room in ROOMS:
        package = tree / room
        package.mkdir()
        (package / "__init__.py").write_text("")
        lines = [f"import {other}.module" for other in imports.get(room, ())]
        (package / "module.py").write_text("\n".join(lines) + "\n")
    return subprocess.run([LINT_IMPORTS, "--config", os.path.join(REPO, ".importlinter")],
                          cwd=tree, env=dict(os.environ, PYTHONPATH=str(tree)),
                          capture_output=True, text=True, timeout=120)


def test_imports_that_run_downward_keep_the_contract(tmp_path):
    result = lint(tmp_path, {"cli": ROOMS[:-1], "monitor": ["ledger", "engine", "pipeline"],
                             "ledger": ["pipeline", "serving", "engine"],
                             "engine": ["serving", "components", "common"],
                             "serving": ["common"], "pipeline": ["components", "common"],
                             "datagen": ["components"], "components": ["common"]})
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("importer, imported", [
    ("common", "components"), ("components", "pipeline"), ("datagen", "serving"),
    ("pipeline", "serving"), ("pipeline", "engine"), ("serving", "engine"),
    ("serving", "pipeline"), ("engine", "pipeline"), ("engine", "cli"), ("pipeline", "ledger"),
    ("serving", "ledger"), ("ledger", "cli"), ("ledger", "monitor"), ("engine", "monitor"),
    ("monitor", "cli"),
])
def test_an_import_against_the_flow_breaks_the_contract(tmp_path, importer, imported):
    result = lint(tmp_path, {importer: [imported]})
    assert result.returncode != 0
    assert f"{importer}.module -> {imported}.module" in result.stdout
