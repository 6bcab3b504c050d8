"""A real `kill -9` of the connector at each step of delivery: after a restart every
qualifying post has exactly one ticket."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from connector.db.schema import local_tickets, outbox
from connector.store import Store
from tests.conftest import database_url, post_dict, write_jsonl

ROOT = Path(__file__).resolve().parents[1]

# Runs `yorisoi replay` in a child process that SIGKILLs itself at the chosen step of the
# Nth delivery. The step is wrapped from outside: the connector has no test hooks.
CHILD = textwrap.dedent("""
    import os, signal, sys
    from connector.helpdesks.local import LocalHelpdesk
    from connector.db.outbox import OutboxRepository
    from connector.cli import main

    cls_name, method, when, nth = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    cls = {"LocalHelpdesk": LocalHelpdesk, "OutboxRepository": OutboxRepository}[cls_name]
    original = getattr(cls, method)
    calls = {"n": 0}

    def wrapped(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == nth and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        result = original(self, *args, **kwargs)
        if calls["n"] == nth and when == "after":
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(cls, method, wrapped)
    main(["replay", sys.argv[5], "--json", "--wait", "2"])
""")


@pytest.mark.parametrize("cls, method, when", [
    ("LocalHelpdesk", "create_ticket", "before"),
    ("LocalHelpdesk", "create_ticket", "after"),
    ("OutboxRepository", "mark_created", "before"),
    ("OutboxRepository", "mark_created", "after"),
    ("OutboxRepository", "claim_due", "after"),
])
def test_kill_9_mid_delivery_then_restart(tmp_path, env, cls, method, when):
    posts = [post_dict(id=f"{i:04d}", text=f"ソラモバイル繋がらない #{i}", author={"id": str(i)}) for i in range(12)]
    posts.append(post_dict(id="9999", text="今日は空がきれい"))  # does not qualify
    file = write_jsonl(tmp_path / "posts.jsonl", posts)
    child_env = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
    nth = 1 if method == "claim_due" else 5
    killed = subprocess.run([sys.executable, "-c", CHILD, cls, method, when, str(nth), str(file)],
                            env=child_env, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr

    restarted = subprocess.run([sys.executable, "-m", "connector.cli", "replay", str(file), "--json", "--wait", "2"],
                               env=child_env, capture_output=True, text=True, timeout=120)
    assert restarted.returncode == 0, restarted.stderr
    summary = json.loads(restarted.stdout)

    store = Store(database_url(env))
    with store.engine.connect() as conn:
        per_post = Counter(conn.execute(select(local_tickets.c.external_id)).scalars().all())
        statuses = Counter(conn.execute(select(outbox.c.status)).scalars().all())
    assert per_post == Counter({f"yorisoi:x:{i:04d}": 1 for i in range(12)}), summary
    assert statuses == Counter({"done": 12})
    assert len(store.outbox.list_tickets()) == 12
