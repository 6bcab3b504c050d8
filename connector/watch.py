"""The watch configuration: which brands to watch and what to leave out.

A TOML file (`YORISOI_WATCH`); the commented example is `connector/demo/watch.toml`. Loading
checks every key so that a typo fails at start-up with the file, the key and what is wrong,
instead of silently watching nothing.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connector.analysis.priority import PriorityTable
from connector.textnorm import fold


class WatchConfigError(ValueError):
    """The watch file is invalid; the message names the file and the key."""


_BRAND_KEYS = {"name", "keywords", "hashtags", "mentions", "exclude_words", "exclude_accounts", "languages", "reply"}
_FEED_KEYS = {"url", "name"}
_REPLY_KEYS = {"signature", "signature_en", "tone", "tone_en", "avoid_words", "dm_handoff", "dm_handoff_en", "faq"}
_FAQ_KEYS = {"topic", "keywords", "url", "title", "title_en"}
#: The placeholders a signature form may use; anything else in braces is a typo.
_SIGNATURE_FIELDS = {"agent", "brand"}


@dataclass(frozen=True)
class FaqLink:
    """A help page for one topic: the draft suggests it and the draft check asks for it when the
    post is about the topic (one of `keywords` in the post, compared folded like brand keywords)."""

    topic: str
    keywords: tuple[str, ...]
    url: str
    title: str = ""
    title_en: str = ""

    def matches(self, text: str) -> bool:
        folded = fold(text)
        return any(fold(word) in folded for word in (self.topic, *self.keywords))


@dataclass(frozen=True)
class ReplyGuidelines:
    """How the brand answers in public (`[brand.reply]`): shown beside the draft, used by the
    suggested first draft and checked by the draft check. Every field is optional."""

    #: The signature form, with {agent} and {brand}: 「{brand}の{agent}です」.
    signature: str = ""
    #: The same for English replies: "— {agent}, {brand} Support".
    signature_en: str = ""
    tone: str = ""
    tone_en: str = ""
    avoid_words: tuple[str, ...] = ()
    #: The sentence that moves the conversation to direct messages (personal details never in public).
    dm_handoff: str = ""
    dm_handoff_en: str = ""
    faq: tuple[FaqLink, ...] = ()

    @property
    def configured(self) -> bool:
        """The brand has a [brand.reply] table with anything in it."""
        return self != ReplyGuidelines()

    def faq_for(self, text: str) -> tuple[FaqLink, ...]:
        """The help pages whose topic the text is about, in the order the file lists them."""
        return tuple(link for link in self.faq if link.matches(text))

    def to_dict(self) -> dict[str, Any]:
        return {"signature": self.signature, "signature_en": self.signature_en, "tone": self.tone,
                "tone_en": self.tone_en, "avoid_words": list(self.avoid_words), "dm_handoff": self.dm_handoff,
                "dm_handoff_en": self.dm_handoff_en,
                "faq": [{"topic": f.topic, "keywords": list(f.keywords), "url": f.url, "title": f.title,
                         "title_en": f.title_en} for f in self.faq]}
_LANG = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")


@dataclass(frozen=True)
class Brand:
    name: str
    keywords: tuple[str, ...]
    hashtags: tuple[str, ...]
    mentions: tuple[str, ...]
    exclude_words: tuple[str, ...]
    exclude_accounts: tuple[str, ...]
    languages: tuple[str, ...]
    reply: ReplyGuidelines = ReplyGuidelines()


@dataclass(frozen=True)
class Feed:
    """An RSS/Atom feed to read (a blog search, a review site, はてな匿名ダイアリー, news alerts)."""

    url: str
    name: str


@dataclass(frozen=True)
class WatchConfig:
    brands: tuple[Brand, ...]
    priority: PriorityTable
    source: str = "<memory>"
    feeds: tuple[Feed, ...] = ()

    @property
    def brand_names(self) -> tuple[str, ...]:
        return tuple(b.name for b in self.brands)

    def brand(self, name: str | None) -> Brand | None:
        return next((b for b in self.brands if b.name == name), None)


def load_watch(path: Path | str) -> WatchConfig:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WatchConfigError(f"{path}: file not found (set YORISOI_WATCH to your watch file)") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise WatchConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_watch(raw, source=str(path))


def _check_table(entry: Any, where: str, allowed: frozenset[str] | set[str], fail: Any,
                 what: str = "must be a table") -> dict[str, Any]:
    """A TOML table with only `allowed` keys: a typo names itself instead of silently dropping
    the rule it meant to set."""
    if not isinstance(entry, dict):
        raise fail(where, what)
    extra = set(entry) - set(allowed)
    if extra:
        raise fail(f"{where}.{sorted(extra)[0]}", f"unknown key (allowed: {', '.join(sorted(allowed))})")
    return entry


def parse_watch(raw: dict[str, Any], source: str = "<memory>") -> WatchConfig:
    def fail(key: str, problem: str) -> WatchConfigError:
        return WatchConfigError(f"{source}: {key}: {problem}")

    unknown = set(raw) - {"brand", "priority", "feed"}
    if unknown:
        raise fail(sorted(unknown)[0], "unknown key (expected [[brand]], optional [[priority]] and [[feed]])")
    brands_raw = raw.get("brand")
    if not isinstance(brands_raw, list) or not brands_raw:
        raise fail("brand", "at least one [[brand]] table is required")
    brands = []
    seen_names: set[str] = set()
    for index, entry in enumerate(brands_raw):
        where = f"brand[{index}]"
        _check_table(entry, where, _BRAND_KEYS, fail)
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip():
            raise fail(f"{where}.name", "a non-empty string is required")
        if name in seen_names:
            raise fail(f"{where}.name", f"brand {name!r} is listed twice")
        seen_names.add(name)

        def strings(key: str, required: bool = False) -> tuple[str, ...]:
            value = entry.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
                raise fail(f"{where}.{key}", "must be a list of non-empty strings")
            return tuple(v.strip() for v in value)

        keywords = strings("keywords")
        hashtags = tuple(h if h.startswith(("#", "＃")) else f"#{h}" for h in strings("hashtags"))
        mentions = tuple(m if m.startswith(("@", "＠")) else f"@{m}" for m in strings("mentions"))
        if not (keywords or hashtags or mentions):
            raise fail(where, "needs at least one of keywords, hashtags or mentions")
        for key, values in (("keywords", keywords), ("hashtags", hashtags), ("mentions", mentions)):
            for value in values:
                if len(fold(value).strip("#@ ")) < 2:
                    raise fail(f"{where}.{key}", f"{value!r} is too short to match reliably")
        languages = strings("languages")
        for lang in languages:
            if not _LANG.match(lang):
                raise fail(f"{where}.languages", f"{lang!r} is not a language code like 'ja' or 'en'")
        brands.append(Brand(
            name=name.strip(), keywords=keywords, hashtags=hashtags, mentions=mentions,
            exclude_words=strings("exclude_words"), exclude_accounts=strings("exclude_accounts"),
            languages=languages, reply=_reply(entry.get("reply"), f"{where}.reply", fail),
        ))
    priority_raw = raw.get("priority")
    if priority_raw is None:
        priority = PriorityTable.default()
    else:
        if not isinstance(priority_raw, list):
            raise fail("priority", "must be an array of tables ([[priority]])")
        try:
            priority = PriorityTable.from_rules(priority_raw)
        except ValueError as exc:
            raise fail("priority", str(exc)) from None
    return WatchConfig(brands=tuple(brands), priority=priority, source=source, feeds=_feeds(raw.get("feed"), fail))


def _feeds(feeds_raw: Any, fail: Any) -> tuple[Feed, ...]:
    if feeds_raw is None:
        return ()
    if not isinstance(feeds_raw, list):
        raise fail("feed", "must be an array of tables ([[feed]])")
    feeds: list[Feed] = []
    for index, entry in enumerate(feeds_raw):
        where = f"feed[{index}]"
        _check_table(entry, where, _FEED_KEYS, fail)
        url = entry.get("url")
        if not isinstance(url, str) or not re.match(r"^https?://[^\s/]+", url.strip()):
            raise fail(f"{where}.url", "an http:// or https:// URL is required")
        name = entry.get("name", "")
        if not isinstance(name, str):
            raise fail(f"{where}.name", "must be a string")
        if any(f.url == url.strip() for f in feeds):
            raise fail(f"{where}.url", f"{url!r} is listed twice")
        feeds.append(Feed(url=url.strip(), name=name.strip() or url.strip()))
    return tuple(feeds)


def _reply(raw: Any, where: str, fail: Any) -> ReplyGuidelines:
    """`[brand.reply]`: every key checked, so a typo names itself instead of silently dropping
    the rule it meant to set."""
    if raw is None:
        return ReplyGuidelines()
    _check_table(raw, where, _REPLY_KEYS, fail, "must be a table ([brand.reply] after its [[brand]])")

    def text(key: str) -> str:
        value = raw.get(key, "")
        if not isinstance(value, str):
            raise fail(f"{where}.{key}", "must be a string")
        return value.strip()

    def signature(key: str) -> str:
        value = text(key)
        if value:
            fields = set(re.findall(r"{([^{}]*)}", value))
            unknown = fields - _SIGNATURE_FIELDS
            if unknown:
                raise fail(f"{where}.{key}", f"unknown placeholder {{{sorted(unknown)[0]}}} (use {{agent}} and {{brand}})")
            if "agent" not in fields:
                raise fail(f"{where}.{key}", "must contain {agent}: the reply is signed by a person")
        return value

    avoid = raw.get("avoid_words", [])
    if not isinstance(avoid, list) or not all(isinstance(w, str) and w.strip() for w in avoid):
        raise fail(f"{where}.avoid_words", "must be a list of non-empty strings")
    faq_raw = raw.get("faq", [])
    if not isinstance(faq_raw, list):
        raise fail(f"{where}.faq", "must be an array of tables ([[brand.reply.faq]])")
    links: list[FaqLink] = []
    for index, entry in enumerate(faq_raw):
        at = f"{where}.faq[{index}]"
        _check_table(entry, at, _FAQ_KEYS, fail)
        topic = entry.get("topic")
        if not isinstance(topic, str) or not topic.strip():
            raise fail(f"{at}.topic", "a non-empty string is required")
        url = entry.get("url")
        if not isinstance(url, str) or not re.match(r"^https?://[^\s/]+\S*$", url.strip()):
            raise fail(f"{at}.url", "an http:// or https:// URL is required")
        words = entry.get("keywords", [])
        if not isinstance(words, list) or not all(isinstance(w, str) and w.strip() for w in words):
            raise fail(f"{at}.keywords", "must be a list of non-empty strings")
        titles = []
        for key in ("title", "title_en"):
            value = entry.get(key, "")
            if not isinstance(value, str):
                raise fail(f"{at}.{key}", "must be a string")
            titles.append(value.strip())
        links.append(FaqLink(topic=topic.strip(), keywords=tuple(w.strip() for w in words), url=url.strip(),
                             title=titles[0], title_en=titles[1]))
    return ReplyGuidelines(signature=signature("signature"), signature_en=signature("signature_en"),
                           tone=text("tone"), tone_en=text("tone_en"),
                           avoid_words=tuple(w.strip() for w in avoid), dm_handoff=text("dm_handoff"),
                           dm_handoff_en=text("dm_handoff_en"), faq=tuple(links))
