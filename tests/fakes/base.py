"""What every fake shares: route table, request log, injected failures, standalone serving."""
from __future__ import annotations

import argparse
import copy
import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "social"


def template(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def clone(value: Any) -> Any:
    return copy.deepcopy(value)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), status=status, headers=headers or {},
                    content_type="application/json; charset=utf-8")


Route = tuple[str, "re.Pattern[str]", Callable[..., Response]]


@dataclass
class Fault:
    """An answer a stateful helpdesk fake gives instead of the real one, `times` times."""

    method: str
    path: re.Pattern[str]
    status: int
    body: Any
    headers: dict[str, str]
    times: int
    after: bool = False  # True: do the real work, then answer with the fault (a lost answer)


class FakeServer:
    name = "fake"

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.requests: list[dict[str, Any]] = []
        self._failures: deque[tuple[int, dict[str, str], Any]] = deque()
        self._lost: list[tuple[str, str, float]] = []
        self.server: HTTPServer | None = None

    # --- test controls ----------------------------------------------------------------
    def fail_next(self, status: int = 429, times: int = 1, headers: dict[str, str] | None = None,
                  body: Any = None) -> None:
        for _ in range(times):
            self._failures.append((status, headers or {}, body or {"title": "Too Many Requests", "status": status}))

    def lose_next_answer(self, method: str, path_part: str, delay: float) -> None:
        """The next `method` call to a path containing `path_part` does its work, then its
        answer arrives only after `delay` seconds (a client with a shorter read timeout sees a
        timeout although the call succeeded)."""
        self._lost.append((method, path_part, delay))

    def calls(self, path_part: str, method: str | None = None) -> list[dict[str, Any]]:
        return [r for r in self.requests if path_part in r["path"] and (method is None or r["method"] == method)]

    # --- wiring -----------------------------------------------------------------------
    def routes(self) -> list[Route]:
        raise NotImplementedError

    def _dispatch(self, request: Request) -> Response:
        response = self._dispatch_locked(request)
        for i, (method, part, delay) in enumerate(self._lost):
            if method == request.method and part in request.path:
                del self._lost[i]
                time.sleep(delay)  # outside the lock: other calls are served meanwhile
                break
        return response

    def _dispatch_locked(self, request: Request) -> Response:
        with self.lock:
            body: Any = None
            if request.data:
                try:
                    body = json.loads(request.data)
                except ValueError:
                    body = request.form.to_dict() or request.data.decode("utf-8", "replace")
            self.requests.append({"method": request.method, "path": request.path, "args": request.args.to_dict(flat=False),
                                  "headers": dict(request.headers), "json": body})
            if self._failures:
                status, headers, payload = self._failures.popleft()
                return json_response(payload, status, headers)
            for method, pattern, handler in self.routes():
                match = pattern.fullmatch(request.path)
                if match and method == request.method:
                    return handler(request, body, *match.groups())
            return json_response({"error": "NotFound", "message": f"no route {request.method} {request.path}"}, 404)

    def install(self, server: HTTPServer) -> "FakeServer":
        self.server = server
        server.expect_request(re.compile(".*")).respond_with_handler(self._dispatch)
        return self

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url_for("").rstrip("/")

    @classmethod
    def main(cls, setup: Callable[["FakeServer"], None] | None = None) -> None:
        parser = argparse.ArgumentParser(description=f"standalone loopback {cls.name} fake")
        parser.add_argument("--port", type=int, default=0)
        args = parser.parse_args()
        fake = cls()
        if setup:
            setup(fake)
        server = HTTPServer(host="127.0.0.1", port=args.port, threaded=True)
        fake.install(server)
        server.start()
        print(f"{cls.name} fake listening on {fake.url}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            server.stop()


def serve_wsgi(wsgi: Callable[..., Any], port: int, banner: str) -> None:
    """Serve a stateful fake's WSGI app on the loopback interface until Ctrl+C (for the
    closing-note demos and benchmarks, where no pytest-httpserver is running)."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", port, wsgi, threaded=True)
    print(banner.format(port=server.server_port), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


class LoopbackServer:
    """A fake's WSGI app on 127.0.0.1 in a background thread, which can be stopped and started
    again on the same port: while stopped, clients get "connection refused" (a helpdesk that
    is down), and a connector configured with its URL reaches it again once it is back."""

    def __init__(self, wsgi: Callable[..., Any], port: int = 0) -> None:
        self.wsgi = wsgi
        self.port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reserve_port(self) -> int:
        """Pick a free port without serving on it yet (the helpdesk starts "down")."""
        import socket
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        return self.port

    def start(self) -> "LoopbackServer":
        from werkzeug.serving import make_server

        self._server = make_server("127.0.0.1", self.port, self.wsgi, threaded=True)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
