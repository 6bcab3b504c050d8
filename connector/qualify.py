"""Decide whether a post qualifies for a human look, and say why.

Pure: a `Qualifier` is compiled once from the watch configuration and then turns each post
into a `Decision` whose reasons name the rule that matched or dropped it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from connector.evidence import say
from connector.models import Decision, Post
from connector.textnorm import fold, guess_language
from connector.watch import Brand, WatchConfig

_URL = re.compile(r"https?://", re.IGNORECASE)
_HASHTAG = re.compile(r"[#＃]\w+")
# Heuristics for spam that no keyword list catches: link farms and hashtag stuffing.
SPAM_MAX_LINKS = 3
SPAM_MAX_HASHTAGS = 8
_ALNUM = "a-z0-9"


def _term_pattern(term: str) -> str:
    """Regex for one folded keyword.

    Japanese has no spaces, so Japanese terms match anywhere; a term that starts or ends with a
    Latin letter or digit must sit on a word boundary on that side (`au` must not match
    `because`). Spaces inside a Latin term also match `_`, `-`, `・` or nothing, so
    `sora mobile` finds `SoraMobile` and `sora_mobile`.
    """
    folded = fold(term).strip()
    parts = [re.escape(p) for p in folded.split()]
    body = r"[\s_\-・]*".join(parts)
    if re.match(f"[{_ALNUM}]", folded):
        body = f"(?<![{_ALNUM}]){body}"
    if re.search(f"[{_ALNUM}]$", folded):
        body = f"{body}(?![{_ALNUM}])"
    return body


@dataclass(frozen=True)
class _BrandRules:
    brand: Brand
    terms: tuple[tuple[str, str, re.Pattern[str]], ...]  # (kind, original, pattern)
    exclude_words: tuple[tuple[str, str], ...]  # (original, folded)
    exclude_handles: frozenset[str]
    exclude_ids: frozenset[str]  # "platform:author id"
    languages: frozenset[str]

    @classmethod
    def compile(cls, brand: Brand) -> "_BrandRules":
        terms: list[tuple[str, str, re.Pattern[str]]] = []
        for keyword in brand.keywords:
            terms.append(("keyword", keyword, re.compile(_term_pattern(keyword))))
        for tag in brand.hashtags:
            # A hashtag ends where the word ends: #ソラモバイル must not match #ソラモバイル最高.
            terms.append(("hashtag", tag, re.compile(re.escape(fold(tag)) + r"(?!\w)")))
        for mention in brand.mentions:
            terms.append(("mention", mention, re.compile(r"(?<![\w@])" + re.escape(fold(mention)) + r"(?!\w)")))
        handles, ids = set(), set()
        for account in brand.exclude_accounts:
            if ":" in account:
                ids.add(account.strip())
            else:
                handles.add(fold(account.lstrip("@＠")))
        return cls(
            brand=brand,
            terms=tuple(terms),
            exclude_words=tuple((w, fold(w)) for w in brand.exclude_words),
            exclude_handles=frozenset(handles),
            exclude_ids=frozenset(ids),
            languages=frozenset(l.lower().split("-")[0] for l in brand.languages),
        )

    def match(self, folded_text: str) -> list[str]:
        return [say("matched", kind=kind, term=original) for kind, original, pattern in self.terms
                if pattern.search(folded_text)]

    def exclusions(self, post: Post, folded_text: str, language: str | None) -> list[str]:
        reasons = []
        author = post.author
        if (author.handle and fold(author.handle.lstrip("@")) in self.exclude_handles) or \
                f"{post.platform}:{author.id}" in self.exclude_ids:
            reasons.append(say("own_account", who=author.handle or author.id))
        for original, folded in self.exclude_words:
            if folded in folded_text:
                reasons.append(say("excluded_word", word=original))
        if self.languages and language and language not in self.languages:
            reasons.append(say("excluded_language", language=language, brand=self.brand.name))
        return reasons


class Qualifier:
    """Compiled watch rules. `decide` is pure and cheap enough to run on every post."""

    def __init__(self, watch: WatchConfig) -> None:
        self.watch = watch
        self._brands = tuple(_BrandRules.compile(b) for b in watch.brands)

    def mentions_brand(self, text: str) -> bool:
        """Whether `text` names a watched brand (keyword, hashtag, mention): the client-side
        pre-filter of a firehose (Bluesky Jetstream), with the same rules `decide` applies."""
        folded = fold(text)
        return any(rules.match(folded) for rules in self._brands)

    def decide(self, post: Post, follow_up_of: str | None = None,
               follow_up_brand: str | None = None) -> Decision:
        """Qualify `post`. `follow_up_of` is the key of a ticketed post by the same author in
        the same conversation: such a reply qualifies even without naming the brand again,
        because customers rarely repeat the brand in 「追記」 replies."""
        folded = fold(post.text)
        language = (post.lang or guess_language(post.text) or "").lower().split("-")[0] or None
        common = _common_exclusions(post, folded)

        matched_brand: tuple[_BrandRules, list[str]] | None = None
        for rules in self._brands:
            matches = rules.match(folded)
            if matches:
                matched_brand = (rules, matches)
                break
        if matched_brand is None:
            if follow_up_of is None:
                return Decision(False, None, tuple(common) + (say("no_brand"),))
            # A follow-up keeps the brand of the conversation it belongs to.
            if common:
                return Decision(False, follow_up_brand, (say("follow_up_of", key=follow_up_of),) + tuple(common))
            return Decision(True, follow_up_brand, (say("follow_up", key=follow_up_of),))

        rules, matches = matched_brand
        reasons = [say("brand", brand=rules.brand.name, reason=m) for m in matches]
        if follow_up_of:
            reasons.append(say("follow_up", key=follow_up_of))
        excluded = common + rules.exclusions(post, folded, language)
        if excluded:
            return Decision(False, rules.brand.name, tuple(reasons + excluded))
        return Decision(True, rules.brand.name, tuple(reasons))


def _common_exclusions(post: Post, folded_text: str) -> list[str]:
    reasons = []
    if post.repost_of:
        reasons.append(say("repost_of", key=post.repost_of))
    elif folded_text.lstrip().startswith("rt @"):
        reasons.append(say("rt"))
    links = len(_URL.findall(post.text))
    if links >= SPAM_MAX_LINKS:
        reasons.append(say("spam_links", n=links))
    tags = len(_HASHTAG.findall(folded_text))
    if tags >= SPAM_MAX_HASHTAGS:
        reasons.append(say("spam_tags", n=tags))
    return reasons
