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
#: The reason of a post that names no watched brand (and is excluded for nothing else).
NO_MATCH = "no brand keyword, hashtag or mention matched"


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

    def echo_exclusions(self, post: Post, brand: str | None) -> list[str]:
        """Why a bare reply or quote may not count as an echo of `brand`'s storm: the brand's own
        accounts (its support team answering 「ご不便をおかけしております」 names no brand either),
        its excluded words and languages. `brand` None (the parent is not known yet): the
        accounts and words of every brand."""
        folded = fold(post.text)
        language = (post.lang or guess_language(post.text) or "").lower().split("-")[0] or None
        reasons: list[str] = []
        for rules in self._brands:
            if brand is not None and rules.brand.name != brand:
                continue
            reasons += [r for r in rules.exclusions(post, folded, language)
                        if brand is not None or not r.startswith("excluded: language")]
        return list(dict.fromkeys(reasons))


# --- storm echoes -------------------------------------------------------------------------
def echo_refs(post: Post) -> list[tuple[str, str]]:
    """(how, parent key) of the posts this one answers: its reply parent, then its quote."""
    refs = [("reply", post.in_reply_to), ("quote", post.quote_of)]
    return [(how, f"{post.platform}:{ref}") for how, ref in refs if ref]


def may_echo(post: Post, decision: Decision) -> bool:
    """A post that names no brand and is excluded for nothing else, and replies to or quotes
    another post: it may be a storm's echo (「私も！」「うちも」「同じく」)."""
    return (not decision.qualified and decision.brand is None and decision.reasons == (NO_MATCH,)
            and bool(echo_refs(post)))


_HOW = {"reply": ("reply to", "への返信"), "quote": ("quote of", "の引用")}


def echo_reason(storm_id: int | None, how: str, parent_key: str) -> str:
    """Why a post that names no brand counts in a storm (English / Japanese, one reason)."""
    en, ja = _HOW[how]
    if storm_id is None:  # the parent stood alone until this echo: the storm opens with both
        return f"echo of {parent_key}, which now starts a storm ({en} {parent_key}) / {parent_key} への同調で炎上として集計（{parent_key} {ja}）"
    return f"echo of storm #{storm_id} ({en} {parent_key}) / 炎上 #{storm_id} への同調（{parent_key} {ja}）"


def echo_waiting_reason(how: str, parent_key: str) -> str:
    en, ja = _HOW[how]
    return (f"echo candidate: {en} {parent_key}, counted in if that post joins a storm / "
            f"炎上の反応候補: {parent_key} {ja}（その投稿が炎上に入れば集計）")


def echo_decision(decision: Decision, brand: str, storm_id: int | None, how: str, parent_key: str,
                  voice: str | None) -> Decision:
    """The decision for a storm's echo: counted in the storm, and a ticket of its own only for
    a voice (`voice`: why; see `connector.storms.voice_reason`)."""
    reasons = (echo_reason(storm_id, how, parent_key),)
    if voice is None:
        return Decision(False, brand, reasons + ("not a ticket of its own: counted on the storm's problem ticket / "
                                                 "個別チケットなし: 炎上の問題チケットで集計",), echo_of=parent_key)
    return Decision(True, brand, reasons + (voice,), echo_of=parent_key)


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
