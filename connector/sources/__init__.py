"""Source modules, one per network, behind `base.Source`; `make_sources` picks them."""
from __future__ import annotations

from connector.models import PLATFORMS
from connector.sources.base import ReplyRefused, ReplyResult, Source
from connector.sources.local import LocalSource

__all__ = ["ReplyRefused", "ReplyResult", "Source", "make_sources"]


def make_sources() -> dict[str, Source]:
    """The source for each platform. Until a network's own module is configured, replies to
    its posts are recorded locally (status `recorded`)."""
    return {platform: LocalSource(platform) for platform in PLATFORMS}
