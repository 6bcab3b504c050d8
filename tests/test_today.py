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
    assert [i.row["post_key"] for i in data.backlog][0] == f"x:{old['id']}"  # breached first
    assert data.backlog[0].breached and not data.backlog[-1].breached
    assert data.open_total == 2 and data.breached_total >= 1
    assert any(a["key"] == f"x:{fresh['id']}" and "reach" in a["reasons"] for a in data.alerts)
    client = app.test_client()
    _sign_in(app, client)
    page = client.get("/?lang=ja").get_data(as_text=True)
    assert "いま対応が必要なもの" in page and "未対応" in page and "超過" in page and "3日" in page
    assert "公開返信（一次回答）" in page  # which statuses are known
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
