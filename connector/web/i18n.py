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
    "streams": ("ストリーム", "Streams"),
    "streams_note": ("リアルタイム接続（X filtered stream・Mastodon・Bluesky Jetstream）の状態。切断中はそのネットワークを定期ポーリングで取得します（時刻は日本時間）。",
                     "Real-time connections (X filtered stream, Mastodon, Bluesky Jetstream). While one is down its network is polled on a schedule (times in JST)."),
    "streams_none": ("ストリームは設定されていません（ポーリングのみ）。", "No stream is configured (polling only)."),
    "stream_down": ("{network} のストリーム {name} が停止中（{status}）：ポーリングで取得しています",
                    "{network} stream {name} is down ({status}): its posts are polled meanwhile"),
    "stream_col_stream": ("ストリーム", "Stream"),
    "stream_col_status": ("状態", "Status"),
    "stream_col_since": ("接続時間", "Connected for"),
    "stream_col_rate": ("件/分", "Events/min"),
    "stream_col_last": ("最後のイベント", "Last event"),
    "stream_col_reconnects": ("再接続", "Reconnects"),
    "stream_col_error": ("最後のエラー", "Last error"),
    "stream_col_fallback": ("代替", "Fallback"),
    "stream_retry_at": ("次の試行 {when}", "next try {when}"),
    "nav_storms": ("炎上・類似投稿", "Storms"),
    "storm_of_post": ("この投稿が属する{term}", "The {term} this post is part of"),
    "storm_size": ("類似投稿 {size} 件", "{size} similar posts"),
    "storm_first_post": ("最初の投稿:", "First post:"),
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
    # The listening dashboard (issue 8).
    "nav_overview": ("概要", "Overview"),
    "nav_today": ("いま対応が必要なもの", "Needs attention now"),
    "nav_weekly": ("週次レポート", "Weekly report"),
    "nav_topics": ("苦情のトピック", "Complaint topics"),
    "nav_risk": ("拡散リスク", "Public risk"),
    "nav_response": ("応答時間", "Response times"),
    "overview_heading": ("お客様の声の概要", "Voice of the customer: overview"),
    "overview_intro": ("投稿日（日本時間）ごとの件数。感情・意図・事前期待・品質の軸は対象になった（分析した）投稿の件数です。",
                       "Posts per day of posting (Japan time). Sentiment, intent, expectation and quality axis count "
                       "the qualified (analysed) posts."),
    "topics_intro": ("お客様が何について不満を言っているか。トピックごとの件数と投稿の例。",
                     "What customers complain about: posts per topic, with examples."),
    "risk_intro": ("まだ公開返信をしていないチケットを、投稿が広がる危険（拡散リスク）の高い順に並べています。",
                   "Tickets not answered publicly yet, the ones most likely to spread first."),
    "response_intro": ("ヘルプデスクのSLAはチケット作成から測りますが、お客様が待っているのは投稿した瞬間からです。ここでは投稿時刻から測ります。",
                       "The helpdesk's SLA clock starts at ticket creation; the customer has been waiting since the "
                       "post. These times are measured from the post."),
    "decisions_intro": ("ウォッチルールの調整用: 何をなぜ対象外にしたか、どのルールで対象にしたか。",
                        "For tuning the watch rules: what was dropped and why, and which rules kept posts."),
    "filters": ("絞り込み", "Filters"),
    "f_brand": ("ブランド", "Brand"),
    "f_source": ("ソース", "Source"),
    "f_from": ("開始日", "From"),
    "f_to": ("終了日", "To"),
    "f_apply": ("適用", "Apply"),
    "f_reset": ("リセット", "Reset"),
    "csv": ("CSV", "CSV"),
    "show_table": ("数値の表", "Numbers"),
    "no_data": ("この条件のデータはありません。", "No data for these filters."),
    "card_posts": ("投稿", "Posts"),
    "card_qualified": ("対象", "Qualified"),
    "card_dropped": ("対象外", "Dropped"),
    "card_negative": ("ネガティブ", "Negative"),
    "open_tickets": ("未対応のチケット", "Open tickets"),
    "retry": ("再送", "Retry"),
    "retry_all": ("失敗をすべて再送", "Retry all failed"),
    "all_statuses": ("全期間の状態", "All time"),
    "recent_decisions": ("最近の判定（最大100件）", "Recent decisions (up to 100)"),
    "login_heading": ("スーパーバイザーのログイン", "Supervisor sign-in"),
    "login_name": ("ユーザー名", "User name"),
    "login_password": ("パスワード", "Password"),
    "login_submit": ("ログイン", "Sign in"),
    "logout": ("ログアウト", "Sign out"),
    "logout_everywhere": ("すべての端末でログアウト", "Sign out everywhere"),
    "bad_login": ("ユーザー名またはパスワードが違います。", "Wrong user name or password."),
    "throttled": ("失敗が続いたため、{wait} 秒後にもう一度お試しください。",
                  "Too many failed attempts: try again in {wait} seconds."),
    "signed_in_as": ("{user} でログイン中", "Signed in as {user}"),
    "error_heading": ("入力に誤りがあります", "Something in the request is wrong"),
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

