"""A total deadline for helpdesk calls.

`requests` only has connect and read timeouts: the read timeout restarts with every byte, so
an answer trickled one byte at a time has no end, outlives the outbox lease (120 s), and a
second worker takes the row over and sends again (issue 16 #8). `DeadlineSession` bounds the
whole call (connect, headers, body) by wall-clock time: the call runs in a helper thread and
the caller stops waiting when the deadline passes, with a `requests.Timeout` (an unknown
outcome: the outbox looks up before sending again). The pipeline sets a budget per outbox row
(`within`) below its lease; every call of that row gets what is left of it.
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Iterator

import requests

#: One call's bound when no row budget is set (CLI, webhooks): below the 120 s lease.
CALL_DEADLINE = 60.0

_until: ContextVar[float | None] = ContextVar("helpdesk_deadline", default=None)


@contextmanager
def within(seconds: float) -> Iterator[None]:
    """Every helpdesk call in this block ends (or gives up) within `seconds` in total."""
    token = _until.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _until.reset(token)


def time_left() -> float:
    until = _until.get()
    left = CALL_DEADLINE if until is None else until - time.monotonic()
    return min(left, CALL_DEADLINE)


class DeadlineExceeded(requests.Timeout):
    """No complete answer within the total deadline: the outcome is unknown."""


class DeadlineSession(requests.Session):
    """A Session whose every call ends within `time_left()` seconds."""

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        left = time_left()
        if left <= 0:
            raise DeadlineExceeded(f"no time left for {method!s} {url!s} (total deadline)")
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["response"] = requests.Session.request(self, method, url, *args, **kwargs)
            except BaseException as exc:  # handed to the caller
                box["error"] = exc

        worker = threading.Thread(target=run, name="helpdesk-call", daemon=True)
        worker.start()
        worker.join(left)
        if worker.is_alive():
            # The helper thread finishes (or times out) on its own; its answer is dropped.
            raise DeadlineExceeded(f"no complete answer to {method!s} within {left:.0f} s (total deadline)")
        if "error" in box:
            raise box["error"]
        response: requests.Response = box["response"]
        return response
