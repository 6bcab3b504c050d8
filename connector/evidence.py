"""Evidence lines and qualification reasons: one template per kind of line, said in English
(the stored form — analyses.detail, posts.reasons, the ticket note) and rendered per language.

A producer calls `say(code, **params)`; the English template makes the stored line, and
`render(line, lang)` reads the same template back (a regular expression built from it) to
re-say it in Japanese with the parameters translated (label values, reach words, nested
reasons). A line that matches no template is shown as stored: lexicon words with their weight
(「最悪 (-0.9)」) read the same in both languages, and an unknown line is never mistranslated.

Pure: no I/O, stdlib only (besides the label names).
"""
from __future__ import annotations

import re
import string
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

from connector.labels import LABEL_NAMES, VALUE_NAMES


def _value_ja(value: str) -> str:
    """A label value in Japanese, whichever label it belongs to (complaint → 苦情)."""
    for names in VALUE_NAMES.values():
        if value in names:
            return names[value][0]
    return value


_REACH = {"low": "小", "medium": "中", "high": "大", "very high": "非常に大"}
_KINDS = {"keyword": "キーワード", "hashtag": "ハッシュタグ", "mention": "メンション"}
_FEATURES = {"shape:length": "形:長さ", "shape:question_mark": "形:疑問符", "shape:english": "形:英語",
             "lexicon:score_ja": "辞書:日本語スコア", "lexicon:score_en": "辞書:英語スコア",
             "lexicon:positive": "辞書:ポジティブ語", "lexicon:negative": "辞書:ネガティブ語"}


def _features_ja(text: str) -> str:
    """`cue:intent=report (+1.77), sentiment P(negative) (+0.71), word 「、」 (+0.29)` in Japanese."""
    def cue(m: re.Match[str]) -> str:
        label = LABEL_NAMES.get(m["label"], (m["label"],))[0]
        return f"手がかり:{label}={_value_ja(m['value'])}"
    text = re.sub(r"cue:(?P<label>\w+)=(?P<value>\w+)", cue, text)
    text = re.sub(r"sentiment P\((\w+)\)", lambda m: f"感情 P({_value_ja(m[1])})", text)
    text = re.sub(r"(?<![^\s,(])word 「", "語「", text)
    for feature, ja in _FEATURES.items():
        text = text.replace(feature, ja)
    return text


def _probs_ja(text: str) -> str:
    return re.sub(r"P\((\w+)\)", lambda m: f"P({_value_ja(m[1])})", text)


def _conditions_ja(text: str) -> str:
    """`intent=complaint, sentiment=negative` → `意図=苦情, 感情=ネガティブ`."""
    return re.sub(r"(\w+)=(\w+)", lambda m: f"{LABEL_NAMES.get(m[1], (m[1],))[0]}={_value_ja(m[2])}", text)


def _cue_shown(pattern: str) -> str:
    """A lexicon cue without its regular-expression guards: 障害(?<!視覚障害)(?!者) → 障害."""
    return re.sub(r"\(\?<?[!=][^()]*\)", "", pattern)


#: How a parameter is put into Japanese; a parameter not named here is kept as written.
TRANSLATE: dict[str, Callable[[str], str]] = {
    "value": _value_ja, "best": _value_ja, "intent": _value_ja, "level": _value_ja, "priority": _value_ja,
    "reach": lambda w: _REACH.get(w, w), "kind": lambda k: _KINDS.get(k, k),
    "features": _features_ja, "probs": _probs_ja, "conditions": _conditions_ja, "cue": _cue_shown,
    "why": lambda w: render(w, "ja"), "reason": lambda r: render(r, "ja"),
}


@dataclass(frozen=True)
class Template:
    code: str
    en: str
    ja: str


#: Every kind of line, most specific first (the first template whose pattern matches wins).
TEMPLATES: tuple[Template, ...] = (
    # --- qualification (connector/qualify.py) ---
    Template("brand", "brand {brand}: {reason}", "ブランド {brand}: {reason}"),
    Template("matched", "matched {kind} {term}", "{kind}「{term}」に一致"),
    Template("no_brand", "no brand keyword, hashtag or mention matched",
             "ブランドのキーワード・ハッシュタグ・メンションのどれにも一致しません"),
    Template("follow_up", "follow-up: same author's conversation already has a ticket ({key})",
             "続きの投稿: 同じ投稿者の会話に既にチケットがあります（{key}）"),
    Template("follow_up_of", "follow-up of {key}", "{key} の続きの投稿"),
    Template("own_account", "excluded: own or blocked account @{who} (exclude_accounts)",
             "除外: 自社またはブロック中のアカウント @{who}（exclude_accounts）"),
    Template("excluded_word", "excluded: word {word}", "除外: 除外語「{word}」"),
    Template("excluded_language", "excluded: language {language} is not watched for {brand}",
             "除外: 言語 {language} は {brand} の監視対象ではありません"),
    Template("repost_of", "excluded: repost of {key}", "除外: {key} のリポスト"),
    Template("rt", "excluded: repost (text starts with RT @)", "除外: リポスト（本文が RT @ で始まります）"),
    Template("spam_links", "excluded: looks like spam ({n} links)", "除外: スパムの疑い（リンク {n} 件）"),
    Template("spam_tags", "excluded: looks like spam ({n} hashtags)", "除外: スパムの疑い（ハッシュタグ {n} 個）"),
    # --- storms (connector/storms.py): why a post joined a cluster ---
    Template("storm_reply", "reply to {key}", "{key} への返信"),
    Template("storm_quote", "quote of {key} ({score})", "{key} の引用（類似度 {score}）"),
    Template("storm_near", "near-duplicate of {key} ({score})", "{key} とほぼ同じ文面（類似度 {score}）"),
    # --- public risk (connector/analysis/risk.py) ---
    Template("followers", "followers {followers} → reach {reach} (+{weight})",
             "フォロワー {followers} 人 → 到達範囲 {reach}（+{weight}）"),
    Template("engagement", "engagement {reposts} reposts, {quotes} quotes, {replies} replies, {likes} likes (+{weight})",
             "反応: リポスト {reposts}・引用 {quotes}・返信 {replies}・いいね {likes}（+{weight}）"),
    Template("velocity", "velocity {per_hour} weighted engagements/hour (+{weight})",
             "拡散の速さ: 1時間あたり {per_hour}（重み付きの反応数）（+{weight}）"),
    Template("velocity_unknown", "velocity unknown (post age not given)", "拡散の速さ: 不明（投稿時刻がありません）"),
    Template("escalation", "escalation word {word} (+{weight})", "エスカレーション語「{word}」（+{weight}）"),
    Template("escalation_cap", "escalation capped at {cap}", "エスカレーション語の加点は {cap} まで"),
    Template("risk_negative", "negative sentiment {score} (+{weight})", "ネガティブな感情 {score}（+{weight}）"),
    Template("praise_factor", "praise lowers risk ×{factor}", "称賛の投稿のためリスク ×{factor}"),
    Template("risk_score", "score {score}; {why} → {level}", "スコア {score}; {why} → {level}"),
    Template("why_safety", "safety or legal issue ({words})", "安全・法的な問題（{words}）"),
    Template("why_large", "negative, {followers} followers ≥ {limit}", "ネガティブ、フォロワー {followers} 人 ≥ {limit}"),
    Template("why_escalation", "negative with escalation word {words}", "ネガティブでエスカレーション語 {words}"),
    Template("why_spreading_negative", "negative and spreading ({spread} reposts+quotes ≥ {limit})",
             "ネガティブで拡散中（リポスト+引用 {spread} ≥ {limit}）"),
    Template("why_modest", "negative with modest reach", "ネガティブ（到達範囲は小さい）"),
    Template("why_spreading", "spreading ({spread} reposts+quotes ≥ {limit})", "拡散中（リポスト+引用 {spread} ≥ {limit}）"),
    Template("why_low", "not negative, not spreading", "ネガティブでも拡散中でもない"),
    # --- priority (connector/analysis/priority.py) ---
    Template("priority_rule", "rule {n}: {conditions} → {priority}", "ルール {n}: {conditions} → {priority}"),
    Template("priority_default", "no rule matched: default {priority}", "一致するルールなし: 既定の {priority}"),
    # --- labels from cues (connector/analysis/cues.py) ---
    Template("cue", "{value} cue {cue} ({weight})", "{value}の手がかり「{cue}」（{weight}）"),
    Template("no_cue_for", "no cue: default {value} for intent {intent}", "手がかりなし: 意図が{intent}のときの既定値 {value}"),
    Template("no_cue", "no cue: default {value}", "手がかりなし: 既定値 {value}"),
    Template("intent_threshold", "no intent reached {threshold} (best {best} {score}): {value}",
             "{threshold} に達した意図なし（最高は{best} {score}）: {value}"),
    Template("question_mark", "question mark {mark} ({weight})", "疑問符 {mark}（{weight}）"),
    Template("negative_question", "negative question: ×{factor}", "否定的な質問: ×{factor}"),
    Template("sentiment_adds", "{polarity} sentiment {score} adds {weight}", "{polarity}な感情 {score} で +{weight}"),
    # --- models (connector/analysis/labeller.py, model.py, __init__.py) ---
    Template("model_failed", "model {name} failed ({error}): lexicon used", "モデル {name} が失敗しました（{error}）: 辞書で判定"),
    Template("model", "model {name}: {probs}", "モデル {name}: {probs}"),
    Template("lexicon_says", "lexicon and rules say {value}:", "辞書とルールの判定: {value}"),
    Template("weighed", "weighed most: {features}", "最も効いた特徴: {features}"),
    # --- sentiment (connector/analysis/sentiment.py) ---
    Template("negated", "negated: {words} → {weight}", "否定: {words} → {weight}"),
    Template("not_negated", "not negated: {words} asks whether", "否定ではない: {words} は問いかけ"),
    Template("contrast_nothing", "contrast: nothing after {word}, the praise before it damped ×{factor}",
             "逆接: 「{word}」の後に何もないため、前の称賛を ×{factor}"),
    Template("contrast", "contrast: clause after {word} weighted ×{factor}", "逆接: 「{word}」の後の節を ×{factor}"),
    Template("intensified", "intensified: {words} ×{factor}", "強調: {words} ×{factor}"),
    Template("softened", "softened: {words} ×{factor}", "緩和: {words} ×{factor}"),
    Template("too_much", "too much: {words} → {weight}", "過剰: {words} → {weight}"),
    Template("too", "too: {words} ×{factor}", "「すぎ」: {words} ×{factor}"),
    Template("stopped", "stopped: {words} → {weight}", "停止: {words} → {weight}"),
    Template("double_negation", "double negation: {words} → {weight}", "二重否定: {words} → {weight}"),
    Template("advice", "advice: {words} → {weight}", "助言: {words} → {weight}"),
    Template("polite_request", "polite request: {words} hides a complaint → {weight}",
             "丁寧な依頼: 「{words}」の裏に不満 → {weight}"),
    Template("wished_for", "request {word}: wished-for, not yet real → {weight}",
             "依頼「{word}」: 望んでいること（まだ実現していない）→ {weight}"),
    Template("damped_mark", "question mark {mark}: positive words damped ×{factor}", "疑問符 {mark}: ポジティブ語を ×{factor}"),
    Template("damped_question", "question {word}: positive words damped ×{factor}", "疑問「{word}」: ポジティブ語を ×{factor}"),
    Template("conclusion", "conclusion: last sentence weighted ×{factor}", "結び: 最後の文を ×{factor}"),
    Template("sum", "sum {total} → score {score}", "合計 {total} → スコア {score}"),
    Template("no_polar", "no polar word: neutral", "極性のある語なし: 中立"),
    Template("more", "… and {n} more", "… ほか {n} 件"),
    Template("vader", "vader compound {score}", "VADER の総合値 {score}"),
)
_BY_CODE = {t.code: t for t in TEMPLATES}
_POLARITY_JA = {"negative": "ネガティブ", "positive": "ポジティブ"}


def say(code: str, **params: object) -> str:
    """The stored (English) line of one piece of evidence."""
    return _BY_CODE[code].en.format(**params)


@lru_cache(maxsize=None)
def _pattern(template: str) -> re.Pattern[str]:
    parts = []
    for literal, name, _spec, _conv in string.Formatter().parse(template):
        parts.append(re.escape(literal))
        if name is not None:
            parts.append(f"(?P<{name}>.+?)")
    return re.compile("".join(parts) + r"\Z", re.DOTALL)


def parse(line: str) -> tuple[str, dict[str, str]] | None:
    """(code, parameters) of a stored line, or None when no template fits."""
    for template in TEMPLATES:
        match = _pattern(template.en).match(line)
        if match:
            return template.code, match.groupdict()
    return None


def render(line: str, lang: str) -> str:
    """`line` in `lang`: Japanese through its template, English (and unknown lines) as stored."""
    if lang != "ja" or not isinstance(line, str):
        return line
    return _render_ja(line)


#: Rendering tries the templates' patterns one after another; a storm's notes repeat the same
#: evidence lines (same words, same weights) hundreds of times a minute, on the delivery thread
#: that also polls Zendesk's jobs (issue 17). A pure function of the line: cached.
@lru_cache(maxsize=8192)
def _render_ja(line: str) -> str:
    body = line.lstrip(" ")
    indent = line[:len(line) - len(body)]
    found = parse(body)
    if found is None:
        return line
    code, params = found
    shown = {name: TRANSLATE[name](value) if name in TRANSLATE else value for name, value in params.items()}
    if code == "sentiment_adds":
        shown["polarity"] = _POLARITY_JA.get(params["polarity"], params["polarity"])
    return indent + _BY_CODE[code].ja.format(**shown)
