"""The layout's rules, checked: only `connector/db/` speaks SQLAlchemy, and the database layer
and the pipeline type-check strictly (pyproject.toml, [tool.mypy])."""
from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "connector"
DB = PACKAGE / "db"
#: What mypy checks strictly; the rest of the package is read for types but not reported.
STRICT_PATHS = ("connector/db", "connector/pipeline.py", "connector/ports.py")


def _imported_modules(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def sqlalchemy_imports_outside_db() -> list[str]:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if DB in path.parents:
            continue
        for line, module in _imported_modules(path):
            if module == "sqlalchemy" or module.startswith("sqlalchemy."):
                offenders.append(f"{path.relative_to(ROOT)}:{line}: import {module}")
    return offenders


def test_only_the_database_layer_imports_sqlalchemy():
    assert sqlalchemy_imports_outside_db() == [], "use connector.db (its repositories, Conflict, Unavailable)"


def test_the_check_sees_every_kind_of_import(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import os\nimport sqlalchemy.exc as e\ndef f():\n    from sqlalchemy import select\n")
    assert [m for _, m in _imported_modules(sample)] == ["os", "sqlalchemy.exc", "sqlalchemy"]


def test_database_layer_and_pipeline_type_check_strictly():
    api = pytest.importorskip("mypy.api", reason="mypy is not installed (pip install -e '.[test]')")
    stdout, stderr, status = api.run([
        "--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", os.devnull, "--no-error-summary",
        *(str(ROOT / p) for p in STRICT_PATHS)])
    assert status == 0, stdout + stderr


def test_lint_and_import_order_are_clean():
    """ruff ([tool.ruff] in pyproject.toml: pyflakes, pycodestyle, import order) over the code,
    the tests, the benchmarks and the corpus scripts."""
    import shutil
    import subprocess
    import sys

    ruff = shutil.which("ruff") or shutil.which("ruff", path=str(Path(sys.executable).parent))
    if ruff is None:
        pytest.skip("ruff is not installed (pip install -e '.[test]')")
    result = subprocess.run([ruff, "check", "connector", "tests", "benchmarks", "corpus"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
