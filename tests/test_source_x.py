"""X: queries from the watch file, since_id/next_token paging, restart without repeats, the
daily read budget, reply-allowed vs prepared intent link, token refresh."""
from __future__ import annotations

import pytest

from connector.poller import Poller
from connector.sources.x import build_queries
from connector.watch import parse_watch
from tests.fakes.fixtures import *  # noqa: F401,F403
from tests.fakes.x import FakeX


def test_queries_carry_language_retweet_and_exclusions():
    watch = parse_watch({"brand": [{"name": "ソラモバイル", "keywords": ["ソラモバイル", "Sora Mobile"],
                                    "hashtags": ["ソラモバイル"], "mentions": ["soramobile_help"],
                                    "exclude_words": ["求人"], "exclude_accounts": ["soramobile_jp", "x:123"],
                                    "languages": ["ja"]}]})
    [query] = build_queries(watch)
    assert query == ('(ソラモバイル OR "Sora Mobile" OR #ソラモバイル OR @soramobile_help) lang:ja -is:retweet '
                     '-求人 -from:soramobile_jp')


def test_long_queries_are_split_under_512_chars():
    keywords = [f"ソラ商品{i:03d}" for i in range(120)]
    watch = parse_watch({"brand": [{"name": "ソラ", "keywords": keywords, "languages": ["ja", "en"]}]})
    queries = build_queries(watch)
    assert len(queries) > 1 and all(len(q) <= 512 for q in queries)
    assert all(q.endswith("(lang:ja OR lang:en) -is:retweet") for q in queries)
    found = {t for q in queries for t in q.split(") ")[0].strip("(").split(" OR ")}
    assert found == set(keywords)  # every keyword is searched exactly somewhere


def test_paging_cursor_and_restart_without_repeats(social_app, fakes):
    x: FakeX = fakes["x"]
    for i in range(120):
        x.add_post(f"ソラモバイル 速度テスト {i} 回目、遅い")
    svc = social_app(only=("x",))
    first = Poller(svc).run_once(compliance=False)
    search = [u for u in first.units if u.unit.startswith("x:search")]
    assert sum(u.fetched for u in search) == 120
    pages = [c for c in x.calls("/2/tweets/search/recent") if "ソラモバイル" in c["args"]["query"][0]]
    assert len(pages) == 2 and pages[1]["args"]["next_token"] == ["p100"]
    assert "since_id" not in pages[1]["args"]  # a fresh sweep: no since_id while paging either

    # A restart (new app on the same database) resumes from the stored since_id.
    svc2 = social_app(only=("x",))
    x.add_post("ソラモバイル、やっと直った")
    second = Poller(svc2).run_once(compliance=False)
    assert sum(u.fetched for u in second.units if u.unit.startswith("x:search")) == 1
    last = [c for c in x.calls("/2/tweets/search/recent") if "ソラモバイル" in c["args"]["query"][0]][-1]
    assert last["args"]["since_id"] == [max(str(t) for t in x.tweets if t != max(x.tweets))]
    assert svc2.store.posts.counts()["posts"] == 121


def test_daily_read_budget_is_enforced_and_shown(social_app, fakes):
    x: FakeX = fakes["x"]
    for i in range(60):
        x.add_post(f"ソラモバイル つながらない {i}")
    svc = social_app(only=("x",), X_DAILY_READ_BUDGET="0.30")
    report = Poller(svc).run_once(compliance=False)
    asked = [int(c["args"]["max_results"][0]) for c in x.calls("/2/tweets/search/recent")]
    assert asked[0] == 20  # $0.30 / ($0.005 post + $0.010 user) = 20
    source = svc.sources["x"]
    assert source.spent_today() <= 0.30 + 1e-9
    assert any("budget reached" in (u.note or "") for u in report.units)
    assert any("of $0.30 daily read budget" in line for line in report.usage)
    calls_before = len(x.calls("/2/tweets/search/recent"))
    Poller(svc).run_once(compliance=False)  # spent: no further search calls today
    assert len(x.calls("/2/tweets/search/recent")) == calls_before


def _ticket_for(svc, post_key):
    svc.pipeline.drain(max_wait=1)
    return svc.store.outbox.ticket_for(post_key).ticket_id


def test_reply_allowed_is_sent_and_unsummoned_gets_intent_link(social_app, fakes):
    x: FakeX = fakes["x"]
    summoned = x.add_post("ソラモバイルの請求が二重です、確認してください", mention_brand=True)
    plain = x.add_post("ソラモバイル、駅で全然つながらない")
    svc = social_app(only=("x",))
    Poller(svc).run_once(compliance=False)

    sent = svc.reply(ticket_id=_ticket_for(svc, f"x:{summoned}"), agent="佐藤", text="ご不便をおかけしております。", dedupe_key="k1")
    assert sent.exchange["status"] == "sent"
    [reply] = x.replies
    assert reply["reply"] == {"in_reply_to_tweet_id": summoned} and reply["text"].endswith("（ソラモバイル 佐藤）")

    prepared = svc.reply(ticket_id=_ticket_for(svc, f"x:{plain}"), agent="佐藤", text="確認いたします。", dedupe_key="k2")
    assert prepared.exchange["status"] == "prepared"
    assert prepared.exchange["url"].startswith(f"https://x.com/intent/tweet?in_reply_to={plain}&text=")
    assert len(x.replies) == 1  # nothing was posted through the API

    ticket = svc.helpdesk.ticket(int(_ticket_for(svc, f"x:{plain}")))
    assert f"https://x.com/intent/tweet?in_reply_to={plain}" in ticket["description"]


def test_expired_user_token_is_refreshed_and_rotated(social_app, fakes):
    x: FakeX = fakes["x"]
    post_id = x.add_post("ソラモバイル、解約方法を教えて", mention_brand=True)
    x.user_token = "something-else"  # ours has expired
    svc = social_app(only=("x",), X_USER_REFRESH_TOKEN="r0", X_CLIENT_ID="client-1")
    Poller(svc).run_once(compliance=False)
    outcome = svc.reply(ticket_id=_ticket_for(svc, f"x:{post_id}"), agent="佐藤", text="ご案内します。", dedupe_key="k3")
    assert outcome.exchange["status"] == "sent"
    assert svc.store.sources.get_state("token:x")["refresh_token"].startswith("rotated-")
    assert "r0" not in repr(svc.sources["x"]) and "test-x" not in repr(svc.sources["x"])


# --- text entities (issue 15 #3) ---------------------------------------------------------
def test_x_text_entities_are_unescaped_exactly_once():
    from connector.sources.x import unescape_text
    assert unescape_text("A &amp; B &lt;3 &gt;_&lt;") == "A & B <3 >_<"
    assert unescape_text("&amp;lt;") == "&lt;"  # the author typed `&lt;`: not decoded twice
    assert unescape_text("&amp;amp;") == "&amp;"
    # only X's three: anything else is the author's own text
    assert unescape_text("&quot;hi&quot; &#39; &nbsp; &copy;") == "&quot;hi&quot; &#39; &nbsp; &copy;"
    for raw in ("<b>&</b>", "&amp;lt;", "&&&;;", "a > b < c", "&quot;", "ソラ&モバイル"):
        escaped = raw.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")  # what X serves
        assert unescape_text(escaped) == raw


def test_polled_x_text_is_the_authors_text_not_html_entities(social_app, fakes):
    x: FakeX = fakes["x"]
    text = "ソラモバイル Q&A <重要> 速度>10Mbps? 本文に&lt;と書いた"
    post_id = x.add_post(text)
    assert "&amp;" in x.tweets[post_id]["text"] and "<" not in x.tweets[post_id]["text"]  # served escaped, as X does
    svc = social_app(only=("x",))
    Poller(svc).run_once(compliance=False)
    post, _decision, _analysis = svc.store.posts.load_post(f"x:{post_id}")
    assert post.text == text


# --- field vocabulary (issue 15 #4) ------------------------------------------------------
def test_requests_are_pinned_to_spec_2159_names(social_app, fakes):
    from connector.sources import x as xmod
    x: FakeX = fakes["x"]
    x.add_post("ソラモバイル、圏外です")
    Poller(social_app(only=("x",))).run_once(compliance=False)
    [call, *_] = [c for c in x.calls("/2/tweets/search/recent") if "ソラモバイル" in c["args"]["query"][0]]
    assert xmod.REQUEST_NAMING == "2.159"
    assert "tweet.fields" in call["args"] and "post.fields" not in call["args"]
    fields = call["args"]["tweet.fields"][0].split(",")
    assert "referenced_tweets" in fields and "note_tweet" in fields
    assert not {"referenced_posts", "note_post"} & set(fields)
    assert "referenced_tweets.id" in call["args"]["expansions"][0].split(",")


@pytest.mark.parametrize("naming", ["2.159", "2.167"])
def test_answers_in_either_naming_are_parsed(social_app, fakes, naming):
    x: FakeX = fakes["x"]
    x.naming = naming
    brand_post = x.add_post("ソラモバイル公式: 障害のお知らせ", author="1850000000000000001")
    quoting = x.add_post("ソラモバイル これいつ直るの", author="1850000000000000103", quote_of=brand_post)
    x.tweets[quoting]["public_metrics"]["retweet_count"] = 7
    x.tweets[quoting]["note_tweet"] = {"text": "ソラモバイル これいつ直るの（長文の続き）"}
    reply = x.add_post("ソラモバイル 同じく圏外", author="1850000000000000104", reply_to=quoting)
    svc = social_app(only=("x",))
    Poller(svc).run_once(compliance=False)
    served = [c for c in x.calls("/2/tweets/search/recent")]
    assert served
    post, _d, _a = svc.store.posts.load_post(f"x:{quoting}")
    assert post.metrics.reposts == 7
    assert post.text == "ソラモバイル これいつ直るの（長文の続き）"
    assert svc.store.sources.post_extras(post.key).get("reply_allowed") is True  # quoted our post: via includes
    replied, _d, _a = svc.store.posts.load_post(f"x:{reply}")
    assert replied.in_reply_to == quoting


def test_to_post_reads_both_namings_directly():
    from connector.sources.x import XSource, answer_naming
    old = {"data": [{"id": "10", "text": "a &amp; b", "author_id": "1", "created_at": "2026-11-20T09:00:00.000Z",
                     "referenced_tweets": [{"type": "replied_to", "id": "9"}],
                     "public_metrics": {"retweet_count": 3, "reply_count": 1, "like_count": 0, "quote_count": 0}}],
           "includes": {"users": [{"id": "1", "username": "u", "name": "U"}], "tweets": [{"id": "9", "author_id": "2"}]}}
    new = {"data": [{"id": "10", "text": "a &amp; b", "author_id": "1", "created_at": "2026-11-20T09:00:00.000Z",
                     "referenced_posts": [{"type": "replied_to", "id": "9"}],
                     "public_metrics": {"repost_count": 3, "reply_count": 1, "like_count": 0, "quote_count": 0}}],
           "includes": {"users": [{"id": "1", "username": "u", "name": "U"}], "posts": [{"id": "9", "author_id": "2"}]}}
    source = XSource.__new__(XSource)
    source.user_id = None
    for body in (old, new):
        [polled], skipped = source._normalise(body)
        assert skipped == 0
        assert polled.post.in_reply_to == "9" and polled.post.metrics.reposts == 3 and polled.post.text == "a & b"
    assert answer_naming(old) == "2.159" and answer_naming(new) == "2.167"
    assert answer_naming({"data": [{"id": "1", "text": "t"}]}) is None
