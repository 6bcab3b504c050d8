"""UI strings in Japanese (first) and English; the language comes from ?lang=, a cookie, or the
browser's Accept-Language."""
from __future__ import annotations

from flask import Request

LANGS = ("ja", "en")

STRINGS: dict[str, tuple[str, str]] = {
    "app_title": ("Yorisoi アクティブサポート", "Yorisoi active support"),
    "nav_tickets": ("チケット", "Tickets"),
    "nav_decisions": ("判定ログ", "Qualification log"),
    "nav_outbox": ("送信キュー", "Outbox"),
    "tickets_heading": ("作成したチケット", "Tickets created"),
    "no_tickets": ("まだチケットはありません。", "No tickets yet."),
    "col_priority": ("優先度", "Priority"),
    "col_ticket": ("チケット", "Ticket"),
    "col_subject": ("件名", "Subject"),
    "col_author": ("投稿者", "Author"),
    "col_source": ("ソース", "Source"),
    "col_labels": ("分析", "Analysis"),
    "col_tags": ("タグ", "Tags"),
    "col_created": ("作成", "Created"),
    "col_posted": ("投稿日時", "Posted"),
    "col_followups": ("追記", "Follow-ups"),
    "col_text": ("本文", "Text"),
    "col_decision": ("判定", "Decision"),
    "col_reasons": ("理由", "Reasons"),
    "col_status": ("状態", "Status"),
    "col_attempts": ("試行", "Attempts"),
    "col_error": ("エラー", "Error"),
    "col_next": ("次回", "Next attempt"),
    "qualified": ("対象", "qualified"),
    "dropped": ("対象外", "dropped"),
    "post": ("投稿", "Post"),
    "open_post": ("元の投稿を開く", "Open the original post"),
    "profile": ("プロフィール", "Profile"),
    "followers": ("フォロワー", "followers"),
    "analysis": ("分析と根拠", "Analysis and evidence"),
    "evidence": ("根拠", "Evidence"),
    "decision": ("判定理由", "Why it qualified"),
    "ticket_in_helpdesk": ("ヘルプデスクのチケット", "Ticket in the helpdesk"),
    "description": ("本文", "Description"),
    "comments": ("コメント", "Comments"),
    "internal_note": ("社内メモ", "Internal note"),
    "public_comment": ("公開コメント", "Public comment"),
    "summary": ("投稿 {posts} 件・対象 {qualified} 件・チケット {tickets} 件",
                "{posts} posts · {qualified} qualified · {tickets} tickets"),
    "outbox_heading": ("ヘルプデスクへの送信待ち・失敗", "Waiting for or failing delivery to the helpdesk"),
    "outbox_empty": ("送信待ちはありません。", "Nothing waiting."),
    "exchanges": ("返信のやりとり", "Replies sent"),
    "back": ("一覧へ戻る", "Back to the list"),
    "not_found": ("見つかりません", "Not found"),
    "filter_all": ("すべて", "All"),
}


def pick_lang(request: Request) -> str:
    wanted = request.args.get("lang") or request.cookies.get("lang")
    if wanted in LANGS:
        return wanted
    return request.accept_languages.best_match(LANGS, default="ja") or "ja"


def translator(lang: str):
    index = 0 if lang == "ja" else 1

    def t(key: str, **values: object) -> str:
        text = STRINGS.get(key, (key, key))[index]
        return text.format(**values) if values else text

    return t
