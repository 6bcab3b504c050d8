"""The first ten minutes of a newcomer: Ctrl+C, a busy port, the demo's dates, a second helpdesk."""
from __future__ import annotations

import json
import socket
import threading
from datetime import datetime, timedelta, timezone

from click.testing import CliRunner

from connector import cli
from connector.cli import pipeline as cli_pipeline
from connector.config import DEMO_FEED
from connector.services import DeliveryWorker
from tests.conftest import post_dict, write_jsonl


class _IdlePipeline:
    """A pipeline with nothing to deliver, on a helpdesk without bulk jobs and a store that
    cannot NOTIFY (SQLite): the worker runs its main thread and the urgent lane."""
    helpdesk = None

    class store:
        class outbox:
            can_notify = False

    def deliver(self, bulk=True):
        class Report:
            created = commented = 0
        return Report()

    def deliver_priority(self):
        return self.deliver()

    def seconds_until_due(self):
        return None


def test_delivery_worker_stops_and_joins_cleanly():
    """`_stop` used to shadow Thread._stop: join() after stop raised TypeError ('Event' not callable)."""
    worker = DeliveryWorker(_IdlePipeline(), interval=0.05)
    assert not isinstance(getattr(worker, "_stop"), threading.Event)
    worker.start()
    worker.stop(timeout=5)
    worker.join(1)
    assert not worker.is_alive()


def test_busy_port_is_one_line_and_changes_nothing(env, app):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = CliRunner().invoke(cli.main, ["demo", "--host", "127.0.0.1", "--port", str(port)], env=env)
    assert result.exit_code != 0
    assert f"port {port}" in result.output and "already in use" in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    store = app.extensions["yorisoi"].store
    assert store.accounts.user_password_hash(cli_pipeline.DEMO_USER) is None  # the password was not reset
    assert store.outbox.list_tickets() == []  # nor the feed loaded


def test_demo_posts_are_placed_relative_to_now():
    now = datetime(2027, 3, 1, 9, 0, tzinfo=timezone.utc)
    original = [json.loads(line) for line in DEMO_FEED.read_text(encoding="utf-8").splitlines() if line.strip()]
    moved = [json.loads(line) for line in cli_pipeline.demo_feed_lines(DEMO_FEED, now)]
    times = [datetime.fromisoformat(r["created_at"].replace("Z", "+00:00")) for r in moved]
    assert max(times) == now - timedelta(minutes=5)
    before = [datetime.fromisoformat(r["created_at"].replace("Z", "+00:00")) for r in original]
    assert {b - a for a, b in zip(before, times)} == {times[0] - before[0]}  # same gaps
    assert [r["author"] for r in moved] == [r["author"] for r in original]  # accounts keep their age


def test_replay_into_another_helpdesk_says_why_nothing_was_sent(env, app, tmp_path):
    file = write_jsonl(tmp_path / "posts.jsonl", [post_dict(text="ソラモバイル繋がらない", id="555")])
    first = CliRunner().invoke(cli.main, ["replay", str(file), "--json", "--wait", "1"], env=env)
    assert first.exit_code == 0, first.output
    store = app.extensions["yorisoi"].store
    with store.engine.begin() as conn:  # as if those tickets had gone to another helpdesk
        from connector.db.schema import tickets
        conn.execute(tickets.update().values(helpdesk="zendesk"))
    again = CliRunner().invoke(cli.main, ["replay", str(file), "--json", "--wait", "1"], env=env)
    summary = json.loads(again.output.strip().splitlines()[-1])
    assert summary["duplicates_skipped"] == 1
    assert "zendesk (1)" in summary["note"] and "YORISOI_DATA_DIR=" in summary["note"]


def test_ctrl_c_on_serve_stops_cleanly(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    from tests.test_serve_browser import ROOT, free_port
    env = {**os.environ, "YORISOI_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(ROOT),
           "YORISOI_LOG_LEVEL": "WARNING"}
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "connector.cli", "serve", "--port", str(port)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        server.send_signal(signal.SIGINT)
        output, _ = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
    assert server.returncode == 0, output
    assert "Traceback" not in output and "TypeError" not in output
    assert "停止しました" in output
