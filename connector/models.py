"""The domain's nouns: a public post, its author, the decision to keep it, its analysis.

Plain data with no I/O. `Post` is the normalized shape every source produces and the replay
files and the inbound webhook carry; pydantic validates it so a bad field is named precisely.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StrictStr,
    field_validator,
)
from pydantic_core import PydanticCustomError

#: Largest post text we accept. Long enough for a blog entry, short enough that a hostile
#: sender cannot make us tokenise megabytes.
MAX_TEXT_CHARS = 20_000

def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold U+0000 and no network lets a person type it: a post
    # carrying one is forged or corrupt, refused here with the field's name rather than
    # failing later inside the database (where SQLite would have kept it and PostgreSQL not).
    if "\x00" in value:
        raise ValueError("contains a NUL character (U+0000)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # A JSON escape such as \ud800 decodes to half a character that no database stores.
        raise ValueError("contains invalid Unicode (an unpaired surrogate such as \\ud800)") from None
    return value


Str = Annotated[StrictStr, AfterValidator(_no_nul)]

#: Earliest post time accepted: before any of the networks existed (X/Twitter opened in 2006).
EARLIEST_POST_TIME = datetime(2006, 1, 1, tzinfo=timezone.utc)
#: How far ahead of this server's clock a post time may be (clock skew, time zones done wrong).
MAX_FUTURE_SKEW = timedelta(days=1)


def _sane_time(value: datetime) -> datetime:
    # Any author sets a post's date (Bluesky's createdAt, a feed's <pubDate>). 9999-12-31
    # overflowed the conversion to Japanese time inside ingest (a 500 on every resend, and a
    # poller unit that never advanced); 0001-01-01 stored, then overflowed the storm index.
    # A time no network can have produced is refused here, with the field named.
    if value < EARLIEST_POST_TIME:
        raise ValueError(f"is before {EARLIEST_POST_TIME:%Y-%m-%d}: no network has posts that old")
    latest = datetime.now(timezone.utc) + MAX_FUTURE_SKEW
    if value > latest:
        raise ValueError(f"is more than {MAX_FUTURE_SKEW.days} day in the future of this server's clock "
                         f"(after {latest:%Y-%m-%dT%H:%M:%SZ})")
    return value


#: A post time within [EARLIEST_POST_TIME, now + MAX_FUTURE_SKEW], with a time zone.
PostTime = Annotated[AwareDatetime, AfterValidator(_sane_time)]


def _known_platform(value: Any) -> str:
    # The networks are the registry `connector.sources.PLATFORMS` (one `PlatformInfo` per
    # sources/<network>.py). Those modules import this one, so the registry is read when a
    # post is validated, not when this module is imported: no import cycle.
    from connector.sources import PLATFORMS
    if not isinstance(value, str) or value not in PLATFORMS:
        names = [repr(p) for p in PLATFORMS]
        raise PydanticCustomError("literal_error", "Input should be {expected}",
                                  {"expected": ", ".join(names[:-1]) + " or " + names[-1]})
    return value


#: A network name from the registry (x, mastodon, bluesky, rss, webhook …).
Platform = Annotated[str, PlainValidator(_known_platform)]
#: Counts fit a 32-bit integer column (PostgreSQL `integer`); no account has 2 billion followers.
Count = Annotated[int, Field(ge=0, le=2_147_483_647, strict=True)]
Ident = Annotated[Str, Field(min_length=1, max_length=256)]
ShortText = Annotated[Str, Field(max_length=2_000)]


class Author(BaseModel):
    """The public account that wrote a post, as the network shows it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: Ident
    handle: ShortText | None = None
    name: ShortText | None = None
    bio: ShortText | None = None
    location: ShortText | None = None
    followers: Count | None = None
    following: Count | None = None
    created_at: AwareDatetime | None = None
    avatar_url: ShortText | None = None


class Metrics(BaseModel):
    """Engagement so far, at the moment the post was fetched."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    replies: Count = 0
    reposts: Count = 0
    likes: Count = 0
    quotes: Count = 0


class Post(BaseModel):
    """One public post, normalized across networks."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    platform: Platform
    id: Ident
    url: ShortText | None = None
    created_at: PostTime
    lang: Annotated[Str, Field(max_length=16)] | None = None
    text: Annotated[Str, Field(min_length=1, max_length=MAX_TEXT_CHARS)]
    author: Author
    metrics: Metrics = Metrics()
    in_reply_to: Ident | None = None
    conversation_id: Ident | None = None
    repost_of: Ident | None = None
    #: The post this one quotes (X `referenced_tweets` type `quoted`, a Bluesky
    #: `app.bsky.embed.record`): like a reply, a quote of a storm's post is one of its echoes.
    quote_of: Ident | None = None

    @field_validator("text")
    @classmethod
    def _text_not_blank(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("text is blank")
        return text

    @field_validator("metrics", mode="before")
    @classmethod
    def _metrics_null_is_zero(cls, value: Any) -> Any:
        # Optional fields may be null; for metrics null means "not known yet", i.e. zero.
        return {} if value is None else value

    @property
    def key(self) -> str:
        """Our id for the post across all networks: `<platform>:<id>`."""
        return f"{self.platform}:{self.id}"

    @property
    def external_id(self) -> str:
        """The id the helpdesk ticket carries, so a ticket can be found again from its post."""
        return f"yorisoi:{self.platform}:{self.id}"

    @property
    def author_external_id(self) -> str:
        return f"yorisoi:{self.platform}:{self.author.id}"


@dataclass(frozen=True)
class Decision:
    """Whether a post qualifies for a human look, and every reason why (or why not)."""

    qualified: bool
    brand: str | None
    reasons: tuple[str, ...]
    #: Key of the post this one replies to or quotes when it names no brand but may echo a
    #: storm (「私も！」): the storm grouping counts it in once that post is a storm member.
    echo_of: str | None = None


class CountedEchoes(dict[str, tuple[str, ...]]):
    """The final reasons of the echoes a grouping counted in, by post key; `voices`: those of
    them whose author is a voice and that were stored without a ticket (they waited for their
    parent, or found it only inside the transaction), by post key → (brand, the reasons they
    were stored and counted with). Each gets its ticket now: "not a ticket of its own unless its
    author is a voice" holds whatever order the stream delivered them in (issue 17)."""

    def __init__(self) -> None:
        super().__init__()
        self.voices: dict[str, tuple[str, tuple[str, ...]]] = {}

    def clear(self) -> None:
        super().clear()
        self.voices.clear()


@dataclass(frozen=True)
class Label:
    """One analysis label with its score and the evidence (tokens or rules) behind it.

    For sentiment, `score` is signed in [-1, 1]; for the other labels it is a confidence or
    strength in [0, 1]. `confidence` is the label model's probability of the chosen value (None
    where a rule, not a model, decided: the lexicon fallback, risk, priority).
    """

    value: str
    score: float
    evidence: tuple[str, ...] = ()
    confidence: float | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"value": self.value, "score": round(self.score, 4), "evidence": list(self.evidence)}
        if self.confidence is not None:
            data["confidence"] = round(self.confidence, 4)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Label":
        confidence = data.get("confidence")
        return cls(data["value"], float(data["score"]), tuple(data.get("evidence", ())),
                   None if confidence is None else float(confidence))


ANALYSIS_LABELS = (
    "sentiment",
    "intent",
    "expectation_type",
    "expectation_content",
    "quality_axis",
    "risk",
    "priority",
)


@dataclass(frozen=True)
class Analysis:
    """Everything the analysis says about one post.

    Values: sentiment negative|neutral|positive; intent complaint|question|request|praise|
    report|other; expectation_type common|individual|situational|latent; expectation_content
    menu|price|quality; quality_axis accuracy|speed|flexibility|empathy|reassurance|impression;
    risk low|medium|high|critical; priority urgent|high|normal|low.
    """

    sentiment: Label
    intent: Label
    expectation_type: Label
    expectation_content: Label
    quality_axis: Label
    risk: Label
    priority: Label
    language: str
    version: str = "lexicon-1"
    #: a model's label below this probability is for a person to check (YORISOI_CONFIDENCE)
    confidence_threshold: float = 0.0

    def labels(self) -> dict[str, Label]:
        return {name: getattr(self, name) for name in ANALYSIS_LABELS}

    def unsure(self) -> tuple[str, ...]:
        """The labels a model gave with less confidence than the threshold: 「要確認 / please check」."""
        return tuple(name for name, label in self.labels().items()
                     if label.confidence is not None and label.confidence < self.confidence_threshold)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {name: label.to_dict() for name, label in self.labels().items()}
        data["language"] = self.language
        data["version"] = self.version
        if self.confidence_threshold:
            data["confidence_threshold"] = self.confidence_threshold
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Analysis":
        labels = {name: Label.from_dict(data[name]) for name in ANALYSIS_LABELS}
        return cls(**labels, language=data["language"], version=data.get("version", "lexicon-1"),
                   confidence_threshold=float(data.get("confidence_threshold") or 0.0))


@dataclass(frozen=True)
class TicketRef:
    """Where a post's ticket lives in the helpdesk."""

    helpdesk: str
    ticket_id: str
    url: str | None = None


@dataclass(frozen=True)
class Exchange:
    """A reply the team sent back to the network, for the sidebar's history."""

    post_key: str
    agent: str
    text: str
    sent_at: datetime
    reply_url: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
