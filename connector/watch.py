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


_BRAND_KEYS = {"name", "keywords", "hashtags", "mentions", "exclude_words", "exclude_accounts", "languages"}
_FEED_KEYS = {"url", "name"}
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


def load_watch(path: Path | str) -> WatchConfig:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WatchConfigError(f"{path}: file not found (set YORISOI_WATCH to your watch file)") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise WatchConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_watch(raw, source=str(path))


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
        if not isinstance(entry, dict):
            raise fail(where, "must be a table")
        extra = set(entry) - _BRAND_KEYS
        if extra:
            raise fail(f"{where}.{sorted(extra)[0]}", f"unknown key (allowed: {', '.join(sorted(_BRAND_KEYS))})")
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
            languages=languages,
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
        if not isinstance(entry, dict):
            raise fail(where, "must be a table")
        extra = set(entry) - _FEED_KEYS
        if extra:
            raise fail(f"{where}.{sorted(extra)[0]}", f"unknown key (allowed: {', '.join(sorted(_FEED_KEYS))})")
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
