"""「いま対応が必要なもの」 (the home page) and the duration format."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from connector import today as today_module
from connector.report_time import format_duration, format_jst
from tests.conftest import post_dict


@pytest.mark.parametrize("seconds, ja, en", [
    (None, "—", "—"), (30, "1分未満", "< 1 min"), (45 * 60, "45分", "45 min"), (2 * 3600, "2時間", "2 h"),
    (2 * 3600 + 15 * 60 + 59, "2時間15分", "2 h 15 min"), (3 * 86400 + 4 * 3600 + 5, "3日4時間", "3 d 4 h"),
    (-(90 * 60), "1時間30分", "1 h 30 min"), (86400, "1日", "1 d"),
])
def test_format_duration(seconds, ja, en):
    assert format_duration(seconds, "ja") == ja
    assert format_duration(seconds, "en") == en


def test_format_jst():
    assert format_jst(datetime(2026, 11, 19, 23, 30, tzinfo=timezone.utc)) == "2026-11-20 08:30 JST"


def test_cluster_term_threshold():
    assert today_module.cluster_term(19, "ja", 20) == "類似投稿のまとまり"
    assert today_module.cluster_term(20, "ja", 20) == "炎上"
    assert today_module.storm_label_min({"YORISOI_STORM_LABEL_MIN": "7"}) == 7
    assert today_module.storm_label_min({}) == today_module.DEFAULT_STORM_LABEL_MIN


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_home_page_backlog_breached_first_and_links(env, app_factory):
    app = app_factory()
    svc = app.extensions["yorisoi"]
    now = datetime.now(timezone.utc)
    old = post_dict(text="ソラモバイル、三日前から繋がらない。最悪", created_at=_iso(now - timedelta(days=3)),
                    author={"id": "501"})
    fresh = post_dict(text="ソラモバイル、さっきから繋がらない。最悪", created_at=_iso(now - timedelta(minutes=2)),
                      author={"id": "502", "followers": 50_000})
    for post in (fresh, old):
        svc.pipeline.ingest_raw(post, "test")
    svc.pipeline.drain(max_wait=5)
    data = today_module.build(svc.store, {}, now)
    assert [i.row.post_key for i in data.backlog][0] == f"x:{old['id']}"  # breached first
    assert data.backlog[0].breached and not data.backlog[-1].breached
    assert data.open_total == 2 and data.breached_total >= 1
    assert any(a["key"] == f"x:{fresh['id']}" and "reach" in a["reasons"] for a in data.alerts)
    client = app.test_client()
    _sign_in(app, client)
    page = client.get("/?lang=ja").get_data(as_text=True)
    assert "いま対応が必要なもの" in page and "未対応" in page and "超過" in page and "3日" in page
    assert "ローカルのヘルプデスクにはチケットのステータスがありません" in page  # which statuses are known
    assert "公開返信（一次回答）" in page and "未対応（返信なし）" in page
    assert f"/posts/x:{old['id']}" in page and "local #" in page
    assert "拡散リスク" in page
    english = client.get("/?lang=en").get_data(as_text=True)
    assert "Needs attention now" in english and "over by" in english
    assert client.get("/overview").status_code == 200


def _sign_in(app, client):
    from connector.web.auth import hash_password
    from tests.conftest import csrf_from
    app.extensions["yorisoi"].store.accounts.create_user("sv", hash_password("a-long-password-監督"), replace=True)
    token = csrf_from(client.get("/login").get_data(as_text=True))
    assert client.post("/login", data={"name": "sv", "password": "a-long-password-監督",
                                       "csrf_token": token}).status_code == 302


def test_topics_drop_time_words_and_stop_words():
    from connector.topics import topics_of_text
    found = topics_of_text("朝の通勤時間に電波が最悪。平日の夜も圏外になる。昨日もだめだった")
    assert "朝" not in found and "夜" not in found and "平日" not in found and "昨日" not in found
    assert "電波" in found and "圏外" in found


@pytest.mark.parametrize("lang, words", [("ja", "ページが見つかりません"), ("en", "Page not found")])
def test_error_pages_speak_the_ui_language(app, lang, words):
    client = app.test_client()
    _sign_in(app, client)
    page = client.get(f"/posts/x:nope?lang={lang}", headers={"Accept": "text/html"})
    assert page.status_code == 404 and words in page.get_data(as_text=True)
    unknown = client.get(f"/no-such-page?lang={lang}", headers={"Accept": "text/html"})
    assert unknown.status_code == 404 and words in unknown.get_data(as_text=True)
    assert client.get("/api/v1/nothing").is_json  # the API keeps answering JSON


def test_server_error_and_429_pages_in_japanese(app):
    from werkzeug.exceptions import TooManyRequests

    @app.get("/boom-test")
    def boom():
        raise RuntimeError("bug")

    @app.get("/busy-test")
    def busy():
        raise TooManyRequests()
    app.config["TESTING"] = False
    app.config["PROPAGATE_EXCEPTIONS"] = False
    client = app.test_client()
    page = client.get("/boom-test?lang=ja", headers={"Accept": "text/html"})
    assert page.status_code == 500 and "サーバーで問題が発生しました" in page.get_data(as_text=True)
    busy_page = client.get("/busy-test?lang=ja", headers={"Accept": "text/html"})
    assert busy_page.status_code == 429 and "アクセスが集中しています" in busy_page.get_data(as_text=True)


def test_login_lock_out_in_japanese(app):
    from tests.conftest import csrf_from
    client = app.test_client()
    last = None
    for _ in range(12):
        token = csrf_from(client.get("/login?lang=ja").get_data(as_text=True))
        last = client.post("/login", data={"name": "nobody", "password": "wrong-password-x", "csrf_token": token})
        if last.status_code == 429:
            break
    assert last.status_code == 429
    assert "失敗が続いたため" in last.get_data(as_text=True)


def test_tickets_page_search_filters_and_paging(app):
    from connector.web import dashboard
    svc = app.extensions["yorisoi"]
    for i in range(dashboard.TICKETS_PER_PAGE + 5):
        svc.pipeline.ingest_raw(post_dict(text=f"ソラモバイル、駅で全然繋がらない。最悪 {i}", author={"id": f"88{i}"}), "test")
    svc.pipeline.ingest_raw(post_dict(text="ソラモバイルのeSIM再発行が最悪、手続きが進まない", author={"id": "999"}), "test")
    svc.pipeline.drain(max_wait=10)
    client = app.test_client()
    _sign_in(app, client)
    first = client.get("/tickets?lang=ja").get_data(as_text=True)
    total = dashboard.TICKETS_PER_PAGE + 6
    assert f"{total} 件中 1〜{dashboard.TICKETS_PER_PAGE} 件目" in first and 'rel="next"' in first
    second = client.get("/tickets?page=2&lang=ja").get_data(as_text=True)
    assert f"{total} 件中 {dashboard.TICKETS_PER_PAGE + 1}〜{total} 件目" in second and 'rel="next"' not in second
    found = client.get("/tickets?q=eSIM&lang=ja").get_data(as_text=True)
    assert "1 件中 1〜1 件目" in found and "eSIM" in found
    none_answered = client.get("/tickets?state=answered&lang=ja").get_data(as_text=True)
    assert "0 件中" in none_answered
    assert client.get("/tickets?q=100%25_&lang=ja").status_code == 200
    assert client.get("/tickets?priority=soon").status_code == 400


def test_topics_never_show_words_from_hostile_markup(app_factory):
    """A hostile post (script tags, event handlers, a javascript: link) is analysed and ticketed
    like any complaint, but its markup never becomes a complaint topic on any page."""
    from connector.db.reports import ReportFilter
    from tests.conftest import login

    app = app_factory()
    svc = app.extensions["yorisoi"]
    now = datetime.now(timezone.utc)
    hostile = [
        "ソラモバイル最悪 <script>alert(1)</script> <img src=x onerror=alert(2)> 料金が高すぎる",
        "ソラモバイルの補償窓口を名乗るDM、[受付はこちら](javascript:alert(document.cookie)) 最悪。請求書も届かない",
        "ソラモバイル 解約できない <svg onload=fetch('//evil.example/x')> 最悪 https://evil.example/steal?c=1",
    ]
    for i, text in enumerate(hostile):
        outcome = svc.pipeline.ingest_raw(post_dict(id=f"hostile{i}", text=text, created_at=_iso(now - timedelta(minutes=5 + i)),
                                                    author={"id": f"h{i}", "handle": f"h{i}"}), "test")
        assert outcome.status == "queued", outcome
    day = (now - timedelta(days=1)).date().isoformat(), (now + timedelta(days=1)).date().isoformat()
    topics = dict(svc.store.reports.report_topics(ReportFilter(since=day[0], until=day[1]), 100))
    assert {"料金", "請求書", "解約"} <= set(topics), topics  # the complaint's own words are kept
    markup = ("script", "alert", "onerror", "img", "src", "java", "cookie", "document", "svg", "onload", "fetch", "evil",
              "https", "steal")
    assert not [t for t in topics if any(m in t.lower() for m in markup)], topics
    from connector import reports
    shown = [row[1] for row in reports.topics(svc.store, ReportFilter(since=day[0], until=day[1])).rows]
    assert "料金" in shown and not [t for t in shown if any(m in t.lower() for m in markup)], shown
    page = login(app.test_client(), app).get(f"/topics?since={day[0]}&until={day[1]}").get_data(as_text=True)
    assert "料金" in page and "<script>alert" not in page  # examples show the post, escaped
