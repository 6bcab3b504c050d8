"""What every streaming source shares: the batch a frame becomes, and the WebSocket plumbing
(websockets' threading client) with a stall timeout.

A stream module (sources/jetstream.py, the Mastodon stream in sources/mastodon.py) turns frames
into `StreamBatch`es; the supervisor (connector/streaming.py) stores their posts, purges their
deletes and then saves their cursor, exactly as the poller does for a poll.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Protocol

from connector.sources.base import PolledPost, SourceError

#: Seconds to open the connection (TCP + TLS + HTTP upgrade).
OPEN_TIMEOUT = 10.0
#: How often recv() returns to look at the stop flag.
TICK_SECONDS = 0.5


@dataclass
class StreamBatch:
    """What one frame (or one catch-up page) brought."""

    posts: list[PolledPost] = field(default_factory=list)
    #: Post ids (the network's, not our keys) the network says were deleted.
    deletes: list[str] = field(default_factory=list)
    #: The stream's cursor once this batch is stored (None: unchanged).
    cursor: dict[str, Any] | None = None
    time_us: int | None = None
    events: int = 0  # frames counted for events/min
    connected: bool = False  # the first batch of a connection: nothing but "we are connected"


class Stream(Protocol):
    platform: str
    #: The stream's unit name: its cursor, health and lock are kept under it.
    name: str

    def events(self, cursor: dict[str, Any] | None, stop: threading.Event) -> Iterator[StreamBatch]:
        """Connect from `cursor`, yield batches until `stop` is set; raise SourceError when the
        connection fails, drops or stalls."""


@contextmanager
def open_websocket(url: str, network: str, headers: dict[str, str] | None = None) -> Iterator[Any]:
    from websockets.exceptions import InvalidHandshake, InvalidURI
    from websockets.sync.client import connect
    try:
        ws = connect(url, open_timeout=OPEN_TIMEOUT, additional_headers=headers or None,
                     max_size=2 ** 22, ping_interval=20, ping_timeout=20)
    except InvalidURI as exc:
        raise SourceError(f"{network}: bad stream URL ({exc})", retryable=False) from None
    except InvalidHandshake as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        retryable = status not in (401, 403, 404)
        raise SourceError(f"{network}: the stream refused the connection ({exc})", retryable=retryable,
                          status=status) from None
    except (OSError, TimeoutError) as exc:
        raise SourceError(f"{network}: cannot reach the stream ({type(exc).__name__}: {exc})",
                          retryable=True) from None
    with ws:  # the context-manager form (websockets ≥ 16 warns about a bare connect())
        yield ws


def send_frame(ws: Any, network: str, text: str) -> None:
    """Send one text frame; a closed or broken connection is a SourceError (reconnect)."""
    from websockets.exceptions import ConnectionClosed
    try:
        ws.send(text)
    except ConnectionClosed as exc:
        raise SourceError(f"{network}: the stream closed the connection ({exc})", retryable=True) from None
    except OSError as exc:
        raise SourceError(f"{network}: stream connection lost ({exc})", retryable=True) from None


def recv_frames(ws: Any, network: str, stall_seconds: float, stop: threading.Event) -> Iterator[str | bytes | None]:
    """Frames until `stop`, and None at every quiet tick (so the caller can report that it is
    alive); SourceError when the server closes the socket or sends nothing for `stall_seconds`
    (a stalled stream: the heartbeat timeout)."""
    import time

    from websockets.exceptions import ConnectionClosed
    last = time.monotonic()
    while not stop.is_set():
        try:
            frame = ws.recv(timeout=min(TICK_SECONDS, stall_seconds))
        except TimeoutError:
            if time.monotonic() - last > stall_seconds:
                raise SourceError(f"{network}: stream stalled (nothing for {stall_seconds:.0f} s)",
                                  retryable=True) from None
            yield None
            continue
        except ConnectionClosed as exc:
            raise SourceError(f"{network}: the stream closed the connection ({exc})", retryable=True) from None
        except OSError as exc:
            raise SourceError(f"{network}: stream connection lost ({exc})", retryable=True) from None
        last = time.monotonic()
        yield frame
