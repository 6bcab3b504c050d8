"""`PlatformInfo`: everything the rest of Yorisoi knows about one network, in one place.

Each `sources/<network>.py` defines its `INFO`; `connector.sources.PLATFORMS` collects them.
Models, labels, compliance, the Channel framework resources, the draft check and the sidebar
read these facts instead of keeping their own lists. Stdlib only, so that any module may read
a descriptor without an import cycle.
"""
from __future__ import annotations

from dataclasses import dataclass

from connector.envvars import EnvVar

#: How a reply's length is counted against `reply_limit` (the draft check implements each):
#: `x-weighted` (twitter-text v3: CJK and emoji 2, URLs 23), `mastodon` (graphemes, URLs 23,
#: `@user@domain` as `@user`), `graphemes` (user-perceived characters).
REPLY_COUNTS = ("x-weighted", "mastodon", "graphemes")


@dataclass(frozen=True)
class PlatformInfo:
    name: str  # the `platform` of a post, e.g. "x"
    display_ja: str
    display_en: str
    #: Longest reply the network accepts (None: we do not reply there, no limit of ours).
    reply_limit: int | None = None
    reply_count: str | None = None  # one of REPLY_COUNTS when reply_limit is set
    #: The author's profile page. Placeholders: {handle} (without @), {handle_or_id},
    #: {user} and {host} (a fediverse `user@host` handle; host from the post URL if absent).
    profile_url: str | None = None
    #: Agents can answer a post of this network from the helpdesk (Channel framework channelback).
    replies: bool = False
    #: When the API refuses a reply, the agent gets a prepared web link instead (X's intent).
    reply_intent: bool = False
    #: Deleted/protected posts must leave our store (compliance.py asks the source).
    compliance: bool = False
    #: Seconds between polls of one unit (None: pushed to us, not polled).
    poll_interval: float | None = None
    #: The environment variables this network's module reads.
    env: tuple[EnvVar, ...] = ()

    def __post_init__(self) -> None:
        if (self.reply_limit is None) != (self.reply_count is None):
            raise ValueError(f"{self.name}: reply_limit and reply_count go together")
        if self.reply_count is not None and self.reply_count not in REPLY_COUNTS:
            raise ValueError(f"{self.name}: reply_count must be one of {REPLY_COUNTS}")

    def display(self, lang: str = "en") -> str:
        return self.display_ja if lang == "ja" else self.display_en
