"""The README's main job for real: `yorisoi demo` loads the feed, `yorisoi serve` serves it
behind the supervisor login, and headless Chromium without a login sees only the sign-in page.
(The signed-in browser check of the overview and the ticket list is tests/test_dashboard_browser.py.)"""
from __future__ import annotations

import http.cookiejar
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Flags that keep Chromium off the network (this machine has none) and quiet in CI.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


USER = ("chief", "chief-password-for-tests")


def signed_in_opener(url: str) -> urllib.request.OpenerDirector:
    """A urllib client with a cookie jar, signed in through the login form."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    page = opener.open(url + "login", timeout=5).read().decode()
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    body = urllib.parse.urlencode({"name": USER[0], "password": USER[1], "csrf_token": token}).encode()
    opener.open(url + "login", data=body, timeout=5)
    return opener


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served_demo(tmp_path):
    env = {**os.environ, "YORISOI_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(ROOT),
           "YORISOI_LOG_LEVEL": "WARNING"}
    env.pop("YORISOI_WATCH", None)
    cli = [sys.executable, "-m", "connector.cli"]
    loaded = subprocess.run(cli + ["demo", "--no-serve"], env=env, capture_output=True, text=True, timeout=300)
    assert loaded.returncode == 0, loaded.stderr
    made = subprocess.run(cli + ["user", "create", USER[0], "--password-stdin"], env=env, input=USER[1] + "\n",
                          capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    port = free_port()
    server = subprocess.Popen(cli + ["serve", "--port", str(port)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(url + "healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail("yorisoi serve did not answer")
        yield url, loaded.stdout
    finally:
        server.terminate()
        server.wait(10)


def test_demo_loads_and_serves_tickets(served_demo):
    url, summary = served_demo
    numbers = dict(re.findall(r"(qualified|tickets created|rejected) (\d+)", summary))
    assert int(numbers["tickets created"]) >= 60 and numbers["rejected"] == "0"
    html = signed_in_opener(url).open(url + "tickets?lang=ja", timeout=5).read().decode()
    created = int(numbers["tickets created"])
    assert html.count('<tr data-external-id="yorisoi:') == min(created, 50)  # one page of 50
    assert f"{created} 件中 1〜{min(created, 50)} 件目" in html  # every ticket is counted, none silently cut
    # Without a login nothing but the sign-in page.
    assert "ログイン" in urllib.request.urlopen(url + "tickets?lang=ja", timeout=5).read().decode()


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (apt-get install chromium)")
def test_chromium_without_login_sees_only_the_sign_in_page(served_demo, tmp_path):
    url, _ = served_demo
    profile = ["--user-data-dir=" + str(tmp_path / "chromium")]
    dom = subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, *profile, "--dump-dom", url + "tickets?lang=ja"],
                         capture_output=True, text=True, timeout=120).stdout
    assert "スーパーバイザーのログイン" in dom and 'name="password"' in dom
    assert "data-external-id=" not in dom and "ソラモバイル" not in dom
