"""The extension's manifest: Chrome's minimum version matches the keys we use, and Mozilla's
`web-ext lint` finds no errors (its warnings are the ones listed in docs/extension.md).

`web-ext` (npm) is installed on first use into a cache folder outside the repository
(`$YORISOI_WEB_EXT_DIR`, default <tmp>/yorisoi-web-ext-<version>); the lint test is skipped with
the reason when node/npm are absent or the package cannot be installed (offline, no cache).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXTENSION = ROOT / "extension"
MANIFEST = json.loads((EXTENSION / "manifest.json").read_text(encoding="utf-8"))
NODE, NPM = shutil.which("node"), shutil.which("npm")
#: Pinned so the list of warnings in docs/extension.md does not move under us.
WEB_EXT_VERSION = "8.10.0"


def _chrome_version(value: str) -> tuple[int, ...]:
    return tuple(int(p) for p in value.split("."))


def test_background_scripts_beside_service_worker_needs_chrome_121():
    # Chrome before 121 refuses a manifest whose `background` has `scripts` as well as
    # `service_worker` (Firefox reads `scripts`, Chrome `service_worker`): the extension would
    # not load at all on 116–120 while the manifest claims to support them.
    background = MANIFEST["background"]
    assert "service_worker" in background and "scripts" in background
    assert _chrome_version(MANIFEST["minimum_chrome_version"]) >= (121,)


@pytest.fixture(scope="module")
def web_ext() -> Path:
    if NODE is None or NPM is None:
        pytest.skip("node/npm are not installed (apt-get install nodejs npm): web-ext lint needs them")
    prefix = Path(os.environ.get("YORISOI_WEB_EXT_DIR")
                  or Path(tempfile.gettempdir()) / f"yorisoi-web-ext-{WEB_EXT_VERSION}")
    binary = prefix / "node_modules" / ".bin" / "web-ext"
    if not binary.exists():
        prefix.mkdir(parents=True, exist_ok=True)
        try:
            result = subprocess.run(
                [NPM, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--prefer-offline",
                 "--no-save", f"web-ext@{WEB_EXT_VERSION}"],
                capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            pytest.skip(f"npm install web-ext@{WEB_EXT_VERSION} timed out (offline?)")
        if result.returncode != 0 or not binary.exists():
            pytest.skip(f"web-ext@{WEB_EXT_VERSION} could not be installed (offline, no npm cache?): "
                        + (result.stderr.strip().splitlines() or ["no output"])[-1])
    return binary


@pytest.fixture(scope="module")
def lint(web_ext: Path) -> dict:
    result = subprocess.run([str(web_ext), "lint", "--source-dir", str(EXTENSION), "--output", "json",
                             "--no-input", "--no-config-discovery"],
                            capture_output=True, text=True, timeout=180, cwd=ROOT)
    match = re.search(r"\{.*\}", result.stdout, re.S)
    assert match, result.stdout[-2000:] + result.stderr[-2000:]
    return json.loads(match.group(0))


def test_web_ext_lint_has_no_errors(lint):
    errors = [f"{m['code']} {m.get('file')}:{m.get('line')} {m['message']}" for m in lint["errors"]]
    assert not errors, "\n".join(errors)


def test_web_ext_lint_warnings_are_listed_in_the_readme(lint):
    # A new warning is either fixed or written down where admins and reviewers read it.
    section = (ROOT / "docs" / "extension.md").read_text(encoding="utf-8")
    missing = sorted({m["code"] for m in lint["warnings"] if m["code"] not in section})
    assert not missing, f"web-ext lint warnings not listed in docs/extension.md: {missing}"


@pytest.fixture(scope="module")
def firefox_build(tmp_path_factory) -> Path:
    """The packaged Firefox build (`yorisoi extension build`), unpacked for web-ext."""
    import zipfile

    from connector import extension_build as eb
    out = tmp_path_factory.mktemp("firefox-build")
    result = eb.build(out / "dist", eb.BuildOptions(connector_url="https://yorisoi.example.co.jp",
                                                    zendesk_hosts=("acme.zendesk.com",)))
    with zipfile.ZipFile(result.firefox_xpi) as archive:
        archive.extractall(out / "unpacked")
    return out / "unpacked"


def test_web_ext_lint_of_the_firefox_build_has_no_errors(web_ext: Path, firefox_build: Path):
    # --self-hosted: this build is distributed by the connector (AMO signs it unlisted), so
    # gecko.update_url is right here; AMO's listed channel alone forbids it (MANIFEST_UPDATE_URL).
    # https://extensionworkshop.com/documentation/develop/web-ext-command-reference/#web-ext-lint
    result = subprocess.run([str(web_ext), "lint", "--source-dir", str(firefox_build), "--output", "json",
                             "--self-hosted", "--no-input", "--no-config-discovery"],
                            capture_output=True, text=True, timeout=180, cwd=ROOT)
    match = re.search(r"\{.*\}", result.stdout, re.S)
    assert match, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads(match.group(0))
    errors = [f"{m['code']} {m.get('file')}:{m.get('line')} {m['message']}" for m in report["errors"]]
    assert not errors, "\n".join(errors)
    # The Firefox build carries no Chrome-only key, so none of the source folder's warnings.
    warnings = sorted({m["code"] for m in report["warnings"]})
    section = (ROOT / "docs" / "extension.md").read_text(encoding="utf-8")
    assert not [code for code in warnings if code not in section], warnings
    assert "MANIFEST_FIELD_UNSUPPORTED" not in warnings and "MANIFEST_PERMISSIONS" not in warnings, warnings
