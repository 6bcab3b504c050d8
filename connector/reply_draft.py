"""A suggested first draft of a public reply, assembled from the post and the brand's reply
guidelines (`[brand.reply]`). Pure: no store, no network.

The parts, in order: a greeting by the customer's name; the situation named in the customer's
own words (a short clause quoted from their post) with thanks or an apology that fits the post;
the help page for the post's topic, or else the brand's DM hand-off sentence for a complaint or
a question; the agent's signature in the brand's form. It is a starting point the agent edits:
the sidebar inserts it into the helpdesk's editor only when the agent clicks, and nothing here
or anywhere sends it. Japanese by default; English when the post is in English.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Sequence

from connector.similar_cases import SITUATIONS
from connector.textnorm import fold, guess_language
from connector.watch import ReplyGuidelines

#: The longest quote of the customer's words (characters): the rest of the reply must fit X.
MAX_QUOTE = 40
MAX_QUOTE_EN = 60  # Latin letters count 1 on X, CJK 2
MAX_NAME = 20
DEFAULT_SIGNATURE_JA = "{brand}の{agent}です。"
DEFAULT_SIGNATURE_EN = "— {agent}, {brand}"

_NOISE = re.compile(r"https?://\S+|[@＠][\w.@-]+|[#＃]\S+")
_CLAUSES = re.compile(r"[。．！？!?\n]+|(?<=[a-z0-9])\.\s+", re.IGNORECASE)
_CLAUSES_EN = re.compile(r"[!?\n,;]+|(?<=[a-z0-9])\.\s+", re.IGNORECASE)
_TRAILING = re.compile(r"(?:[、,\s]*(?:んだけど|なんだけど|だけど|けど|のに|って|なんて|とか|ね|よ|わ|な|w+|ｗ+|草))+$")
_LEADING = re.compile(r"^[、,:：\s]+|^(?:また|もう|まじで|マジで|ほんと|本当に)[、\s]*")


@dataclass(frozen=True)
class DraftPart:
    kind: str  # greeting | situation | faq | dm_handoff | signature
    text: str


@dataclass(frozen=True)
class SuggestedDraft:
    text: str
    lang: str  # ja | en
    parts: tuple[DraftPart, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "lang": self.lang,
                "parts": [{"kind": p.kind, "text": p.text} for p in self.parts]}


def _english(text: str, lang: str | None) -> bool:
    if lang:
        return lang.lower().startswith("en")
    return guess_language(text) == "en"


def _name(author_name: str | None, handle: str | None) -> str:
    """A display name fit for a greeting: control and markup characters out, emoji and
    decorations after the name dropped (「田中@新宿勤務🚃」 → 田中), at most MAX_NAME."""
    raw = unicodedata.normalize("NFKC", author_name or "").strip()
    raw = re.split(r"[@＠|｜/／(（【\[「『<>]", raw, maxsplit=1)[0]
    raw = "".join(ch for ch in raw if unicodedata.category(ch)[0] in "LNM" or ch in " ・-'")
    raw = raw.strip(" ・-'")
    if not raw and handle:
        raw = handle.lstrip("@").split("@", 1)[0]
    return raw[:MAX_NAME].strip()


def customer_words(text: str, *, drop: Sequence[str] = (), keywords: Sequence[str] = (), english: bool = False) -> str:
    """The clause of the post that names the situation, in the customer's words: the first
    clause holding a situation or FAQ keyword, else the longest one; brand names, URLs, mentions,
    hashtags and trailing particles removed, at most MAX_QUOTE characters."""
    cleaned = _NOISE.sub(" ", text)
    for word in sorted((w for w in drop if w), key=len, reverse=True):
        # The particle after the brand goes with it (「ソラモバイルに乗り換えて」 → 「乗り換えて」).
        cleaned = re.sub(re.escape(word) + r"(?:さん|って|の|、|は|が|に|を|で|も|と|へ)?", " ", cleaned,
                         flags=re.IGNORECASE)
    # English keeps the brand (a clause without its subject reads wrong) and splits at commas.
    clauses = [c.strip(" 、,　") for c in (_CLAUSES_EN if english else _CLAUSES).split(cleaned)]
    clauses = [re.sub(r"\s+", " ", c) for c in clauses if len(c.strip()) >= 3]
    if not clauses:
        return ""
    words = [fold(w) for w in (*keywords, *(w for ws in SITUATIONS.values() for w in ws)) if w.strip()]
    chosen = next((c for c in clauses if any(w in fold(c) for w in words)), max(clauses, key=len))
    chosen = _LEADING.sub("", chosen)
    chosen = _TRAILING.sub("", chosen).strip(" 、,")
    longest = MAX_QUOTE_EN if english else MAX_QUOTE
    if len(chosen) > longest:
        cut = chosen[:longest - 1]
        if english and " " in cut:
            cut = cut.rsplit(" ", 1)[0]
        chosen = cut + "…"
    return chosen


def _situation(quote: str, english: bool, sentiment: str | None, intent: str | None) -> str:
    upset = sentiment == "negative" or intent in ("complaint", "report")
    if english:
        if intent == "praise" or (sentiment == "positive" and not upset):
            return f"Thank you for your kind words about \"{quote}\"." if quote else "Thank you for your kind words."
        if intent == "question" and not upset:
            return f"Thanks for your question about \"{quote}\"." if quote else "Thanks for your question."
        return f"We're sorry about \"{quote}\"." if quote else "We're sorry for the trouble."
    if intent == "praise" or (sentiment == "positive" and not upset):
        return f"「{quote}」とのお言葉、ありがとうございます。" if quote else "うれしいお言葉をありがとうございます。"
    if intent == "question" and not upset:
        return f"「{quote}」の件、ご質問ありがとうございます。" if quote else "ご質問ありがとうございます。"
    return f"「{quote}」とのこと、ご不便をおかけして申し訳ございません。" if quote else "ご不便をおかけして申し訳ございません。"


def suggest_draft(*, post_text: str, post_lang: str | None, author_name: str | None, author_handle: str | None,
                  brand: str | None, agent: str | None, guidelines: ReplyGuidelines | None,
                  sentiment: str | None = None, intent: str | None = None,
                  brand_terms: Sequence[str] = ()) -> SuggestedDraft:
    guide = guidelines or ReplyGuidelines()
    english = _english(post_text, post_lang)
    name = _name(author_name, author_handle)
    parts: list[DraftPart] = []
    if name:
        parts.append(DraftPart("greeting", f"Hi {name}," if english else f"{name}様、"))
    links = guide.faq_for(post_text)
    quote = customer_words(post_text, drop=[] if english else [w for w in (brand, *brand_terms) if w],
                           keywords=[w for link in links for w in (link.topic, *link.keywords)], english=english)
    parts.append(DraftPart("situation", _situation(quote, english, sentiment, intent)))
    if links:
        link = links[0]
        title = (link.title_en or link.topic) if english else (link.title or link.topic)
        parts.append(DraftPart("faq", f"{title}: {link.url}" if english else f"{title}はこちらです: {link.url}"))
    else:
        handoff = (guide.dm_handoff_en or "") if english else guide.dm_handoff
        if handoff and (intent in ("complaint", "question", "report", "request") or sentiment == "negative"):
            parts.append(DraftPart("dm_handoff", handoff))
    form = (guide.signature_en or DEFAULT_SIGNATURE_EN) if english else (guide.signature or DEFAULT_SIGNATURE_JA)
    if agent:
        signature = form.format(agent=agent, brand=brand or "").strip()
        if not english and not signature.endswith(("。", "）", ")")) and signature.endswith(("です", "でございます")):
            signature += "。"
        parts.append(DraftPart("signature", signature))
    body = [p.text for p in parts if p.kind != "signature"]
    if english and len(body) > 1 and parts[0].kind == "greeting":
        body[1] = body[1][:1].lower() + body[1][1:]  # "Hi Maria, we're sorry…"
    text = (" " if english else "").join(body)
    signature_part = next((p.text for p in parts if p.kind == "signature"), "")
    if signature_part:  # on its own line: after a link, and where X shows a signature
        text = f"{text}\n{signature_part}"
    return SuggestedDraft(text=text.strip(), lang="en" if english else "ja", parts=tuple(parts))
