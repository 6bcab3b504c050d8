"""The layout stays as the README's Layout section describes it."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONNECTOR = ROOT / "connector"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_helpdesks_never_import_the_pipeline():
    for path in (CONNECTOR / "helpdesks").rglob("*.py"):
        assert not {m for m in _imports(path) if m.startswith("connector.pipeline")}, path


def test_bulk_lease_is_one_value():
    from connector import pipeline
    from connector.helpdesks import base
    assert pipeline.BULK_LEASE == base.BULK_LEASE


def test_each_helpdesk_package_brings_its_routes_and_variables():
    from connector.helpdesks import helpdesk_packages
    rules = {}
    for package in helpdesk_packages():
        assert package.ENV and all(v.name and v.meaning for v in package.ENV)
        rules[package.__name__] = {r for bp in package.blueprints() for r in [bp.name]}
    assert rules == {"connector.helpdesks.zendesk": {"zendesk", "channel", "zendesk_app"},
                     "connector.helpdesks.freshdesk": {"freshdesk"}}


def test_app_routes_of_the_helpdesks(tmp_path):
    from connector import create_app
    from connector.config import Settings
    app = create_app(Settings.from_env({"YORISOI_DATA_DIR": str(tmp_path)}))
    rules = {r.rule for r in app.url_map.iter_rules()}
    assert {"/zendesk/webhook", "/freshdesk/webhook", "/zendesk/manifest.json"} <= rules


def test_no_module_imports_the_package_init():
    """`connector/__init__` (the app factory) imports the web modules; a module importing a name
    defined there (as web/openapi.py once imported __version__) closes a cycle."""
    import pkgutil

    import connector
    submodules = {m.name for m in pkgutil.iter_modules(connector.__path__)}
    for path in CONNECTOR.rglob("*.py"):
        if path == CONNECTOR / "__init__.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "connector" and node.level == 0:
                for alias in node.names:
                    if alias.name in submodules:
                        continue
                    # only the CLI may build the app (lazily, inside a command)
                    assert path == CONNECTOR / "cli" / "__init__.py" and alias.name == "create_app", (path, alias.name)


def test_openapi_imports_first():
    import subprocess
    import sys
    code = "import connector.web.openapi as o, connector; print(o.__version__ == connector.__version__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "True"
