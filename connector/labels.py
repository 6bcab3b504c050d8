"""Japanese and English names of the analysis labels, shared by tickets and the dashboard."""
from __future__ import annotations

LABEL_NAMES: dict[str, tuple[str, str]] = {
    "sentiment": ("感情", "Sentiment"),
    "intent": ("意図", "Intent"),
    "expectation_type": ("事前期待の持ち方", "Expectation type"),
    "expectation_content": ("事前期待の内容", "Expectation content"),
    "quality_axis": ("品質の軸", "Quality axis"),
    "risk": ("拡散リスク", "Public risk"),
    "priority": ("優先度", "Priority"),
}

VALUE_NAMES: dict[str, dict[str, tuple[str, str]]] = {
    "sentiment": {"negative": ("ネガティブ", "negative"), "neutral": ("中立", "neutral"),
                  "positive": ("ポジティブ", "positive")},
    "intent": {"complaint": ("苦情", "complaint"), "question": ("質問", "question"),
               "request": ("要望", "request"), "praise": ("称賛", "praise"),
               "report": ("報告", "report"), "other": ("その他", "other")},
    "expectation_type": {"common": ("共通的", "common"), "individual": ("個別的", "individual"),
                         "situational": ("状況で変化する", "situational"), "latent": ("潜在的", "latent")},
    "expectation_content": {"menu": ("サービスメニュー", "menu"), "price": ("価格", "price"),
                            "quality": ("品質", "quality")},
    "quality_axis": {"accuracy": ("正確性", "accuracy"), "speed": ("迅速性", "speed"),
                     "flexibility": ("柔軟性", "flexibility"), "empathy": ("共感性", "empathy"),
                     "reassurance": ("安心感", "reassurance"), "impression": ("好印象", "impression")},
    "risk": {"low": ("低", "low"), "medium": ("中", "medium"), "high": ("高", "high"),
             "critical": ("重大", "critical")},
    "priority": {"urgent": ("緊急", "urgent"), "high": ("高", "high"), "normal": ("通常", "normal"),
                 "low": ("低", "low")},
}

#: Tag prefix per label, as the helpdesk's views, SLA policies and reports filter on them.
TAG_PREFIX = {
    "sentiment": "sentiment",
    "intent": "intent",
    "expectation_type": "expect",
    "expectation_content": "content",
    "quality_axis": "axis",
    "risk": "risk",
}

def value_name(label: str, value: str, lang: str = "ja") -> str:
    names = VALUE_NAMES.get(label, {}).get(value)
    if names is None:
        return value
    return names[0] if lang == "ja" else names[1]


def label_name(label: str, lang: str = "ja") -> str:
    names = LABEL_NAMES.get(label, (label, label))
    return names[0] if lang == "ja" else names[1]


#: Statuses shown on the pages (outbox, replies, helpdesk tickets) in the words support teams use.
STATUS_WORDS: dict[str, tuple[str, str]] = {
    # the outbox (delivery to the helpdesk)
    "pending": ("送信待ち", "pending"), "sending": ("送信中", "sending"), "failed": ("失敗", "failed"),
    "done": ("送信済み", "delivered"), "create": ("チケット作成", "new ticket"), "comment": ("追記", "comment"),
    # public replies (exchanges)
    "sent": ("返信済み", "sent"), "prepared": ("返信の準備済み（未送信）", "prepared (not sent)"),
    "recorded": ("記録済み（ネットワーク未接続）", "recorded (no network)"), "unknown": ("結果不明", "outcome unknown"),
    # the helpdesk's ticket statuses
    "new": ("未対応", "new"), "open": ("対応中", "open"), "hold": ("保留", "on hold"),
    "solved": ("解決済み", "solved"), "closed": ("終了", "closed"),
}


def status_word(status: object, lang: str) -> str:
    names = STATUS_WORDS.get(str(status))
    if names is None:
        return str(status)
    return names[0] if lang == "ja" else names[1]
