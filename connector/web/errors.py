"""Error pages a person reads: in the UI language (Japanese first), not Werkzeug's English.

Only for browsers (an Accept header that asks for HTML); webhooks, Zendesk and scripts keep
the plain responses they were built against. /api/v1/ answers JSON (connector/web/api.py).
"""
from __future__ import annotations

from flask import g, render_template, request
from werkzeug.exceptions import HTTPException

MESSAGES = {
    404: ("ページが見つかりません", "このアドレスのページはありません。URLを確認するか、ホームから開き直してください。",
          "Page not found", "There is no page at this address. Check the URL or start again from the home page."),
    405: ("この操作はできません", "このページはこの方法では開けません。", "Not allowed", "This page cannot be used this way."),
    429: ("アクセスが集中しています", "短い時間にリクエストが多すぎます。しばらく待ってからもう一度お試しください。",
          "Too many requests", "Too many requests in a short time. Wait a moment and try again."),
    500: ("サーバーで問題が発生しました", "処理を完了できませんでした。時間をおいてもう一度お試しください。続く場合は管理者に連絡してください。",
          "Something went wrong on the server", "The request could not be completed. Try again later; tell your "
          "administrator if it keeps happening."),
}


def wants_html() -> bool:
    return "text/html" in (request.headers.get("Accept") or "")


def html_error(exc: HTTPException):
    code = exc.code or 500
    if not wants_html() or code not in MESSAGES and code < 400:
        return exc
    lang = g.get("lang") or "ja"
    ja_title, ja_text, en_title, en_text = MESSAGES.get(code, (
        f"リクエストを処理できません（{code}）", "入力やURLを確認してください。",
        f"The request could not be handled ({code})", "Check the address and what was sent."))
    title, text = (ja_title, ja_text) if lang == "ja" else (en_title, en_text)
    if code not in (404, 500) and exc.description and lang != "ja":
        text = exc.description
    response = render_template("error.html", heading=title, message=text, code=code, f=None, query=[])
    headers = {}
    if code == 429 and getattr(exc, "retry_after", None):
        headers["Retry-After"] = str(exc.retry_after)
    return response, code, headers
