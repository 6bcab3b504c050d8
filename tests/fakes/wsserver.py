"""A fake WebSocket stream server on loopback (websockets' threading server), for the
streaming sources: a Jetstream-like `/subscribe?cursor=` and Mastodon-like `/api/v1/streaming`.

The server keeps a list of frames (`push`); every connection replays the frames after its
cursor (Jetstream: `time_us` > cursor; frames without one are always sent) and then follows
new ones as they are pushed. Faults on demand: `drop_after(n)` closes the next connection
after n frames, `stall()` stops sending (the socket stays open), `refuse(n)` refuses the
next n handshakes with a 503.
"""
from __future__ import annotations

import json
import threading
import time
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit


class FakeStreamServer:
    def __init__(self) -> None:
        from websockets.sync.server import serve
        self.frames: list[tuple[int | None, str]] = []  # (time_us or None, text)
        self.lock = threading.Lock()
        self.connections: list[dict[str, Any]] = []  # path, cursor, query of each connection
        self.received: list[str] = []  # frames the clients sent (Mastodon's subscribe messages)
        self._drops: list[int] = []
        self._refuse = 0
        self.stalled = False
        self._kick = threading.Event()
        self.closed = threading.Event()
        self._server = serve(self._handler, "127.0.0.1", 0, process_request=self._process_request)
        self.port = self._server.socket.getsockname()[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.closed.set()
        self._server.shutdown()
        self._thread.join(5)

    # --- script -----------------------------------------------------------------------
    def push(self, frame: dict[str, Any] | str) -> None:
        text = frame if isinstance(frame, str) else json.dumps(frame, ensure_ascii=False)
        time_us = frame.get("time_us") if isinstance(frame, dict) else None
        with self.lock:
            self.frames.append((time_us, text))

    def drop_after(self, frames: int) -> None:
        with self.lock:
            self._drops.append(frames)

    def drop_now(self) -> None:
        """Close the open connection(s) now (the client reconnects from its cursor)."""
        self._kick.set()

    def refuse(self, times: int) -> None:
        self._refuse = times

    def stall(self, on: bool = True) -> None:
        self.stalled = on

    # --- server -----------------------------------------------------------------------
    def _process_request(self, connection: Any, request: Any) -> Any:
        if self._refuse > 0:
            self._refuse -= 1
            return connection.respond(503, "stream unavailable\n")
        return None

    def _handler(self, ws: Any) -> None:
        query = parse_qs(urlsplit(ws.request.path).query)
        cursor = int(query["cursor"][0]) if "cursor" in query else None
        with self.lock:
            self.connections.append({"path": ws.request.path, "cursor": cursor, "query": query})
            drop = self._drops.pop(0) if self._drops else None
        sent = 0
        index = 0
        while not self.closed.is_set():
            try:
                while True:
                    message = ws.recv(timeout=0)
                    with self.lock:
                        self.received.append(message if isinstance(message, str) else message.decode())
            except TimeoutError:
                pass
            except Exception:  # the client went away
                return
            if self.stalled:
                time.sleep(0.02)
                continue
            with self.lock:
                pending = self.frames[index:]
            if (drop is not None and sent >= drop) or self._kick.is_set():
                self._kick.clear()
                ws.close()
                return
            if not pending:
                time.sleep(0.005)
                continue
            for time_us, text in pending:
                index += 1
                if cursor is not None and time_us is not None and time_us <= cursor:
                    continue
                if drop is not None and sent >= drop:
                    ws.close()
                    return
                try:
                    ws.send(text)
                except Exception:  # the client went away
                    return
                sent += 1


def wait_for(condition: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll `condition` until it is truthy (its value is returned) or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not met in time")
