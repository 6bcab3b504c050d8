"""The listening dashboard and `yorisoi report`: figures equal a brute-force count over the
stored rows, filters narrow them, CSV equals the page's table, hostile post text stays inert."""
from __future__ import annotations

import csv
import io
import json
import math
import re
from collections import Counter
from datetime import date, timedelta
from html.parser import HTMLParser

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from connector import latency_bins, reports
from connector.db import schema as store_module
from connector.db.engine import utcnow
from connector.db.reports import _whole_months
from connector.db.store import Store
from connector.report_time import report_day
from connector.topics import topics_of_text, watch_terms
from tests.conftest import post_dict

DAYS = ("2026-11-18T01:00:00Z", "2026-11-19T23:30:00Z", "2026-11-20T09:00:00Z")  # 11-19T23:30Z is 11-20 in Japan
TEXTS = (
    ("ソラモバイル、駅で全然繋がらない。通信速度が遅すぎる😡", "x"),
    ("ソラモバイルのサポートセンター、電話が全然つながらない。最悪", "x"),
    ("ソラモバイルの料金プランについて質問です。家族割はありますか？", "mastodon"),
    ("ハルカ珈琲のラテ美味しかった！店員さんも親切", "bluesky"),
    ("ソラモバ、通信速度が遅い。解約しようかな", "mastodon"),
    ("ハルカ珈琲、注文を間違えられたうえに謝罪もなし。二度と行かない", "x"),
    ("今日は空がきれい", "x"),
    ("ソラモバイル スタッフ求人のお知らせ", "bluesky"),
    ("<script>alert(1)</script> ソラモバイルの=HYPERLINK(\"http://evil\")エラー画面 <img src=x onerror=alert(2)>", "x"),
)


@pytest.fixture
def seeded(svc):
    """Posts over three days, networks and brands (some dropped), delivered; half answered."""
    n = 0
    for day in DAYS:
        for text, platform in TEXTS:
            n += 1
            svc.pipeline.ingest_raw(post_dict(id=str(n), platform=platform, created_at=day, text=text,
                                              url=f"https://example.com/{n}", author={"id": f"a{n}"}), "test")
    svc.pipeline.drain(max_wait=1)
    for i, row in enumerate(svc.store.outbox.list_tickets()):
        if i % 2 == 0:
            svc.reply(ticket_id=row["ticket_id"], agent="佐藤", text="ソラモバイルの佐藤です。確認します。",
                      dedupe_key=f"t:{row['ticket_id']}")
    return svc


def window(**extra):
    return {"from": "2026-11-17", "to": "2026-11-21", **extra}


def brute_posts(svc):
    s = store_module
    with svc.store.engine.connect() as conn:
        rows = conn.execute(select(s.posts, *(s.analyses.c[n] for n in s.LABEL_COLUMNS))
                            .outerjoin(s.analyses, s.analyses.c.post_key == s.posts.c.key)).mappings().all()
    return [dict(r) for r in rows]


# --- aggregation correctness ----------------------------------------------------------------
@pytest.mark.parametrize("args", [window(), window(source="x"), window(brand="ソラモバイル"),
                                  window(sentiment="negative"), window(intent="complaint", source="mastodon"),
                                  {"from": "2026-11-20", "to": "2026-11-20"}])
def test_overview_counts_equal_a_brute_force_count(seeded, args):
    f = reports.parse_filter(args)
    tables = {t.name: t for t in reports.overview(seeded.store, f)}
    label_filters = dict(f.labels)
    for breakdown in reports.BREAKDOWNS:
        expected: Counter = Counter()
        for post in brute_posts(seeded):
            day = report_day(post["created_at"])
            if not f.since <= day <= f.until:
                continue
            if f.brands and post["brand"] not in f.brands or f.platforms and post["platform"] not in f.platforms:
                continue
            if any(post[name] not in values for name, values in label_filters.items()):
                continue
            if breakdown in store_module.LABEL_COLUMNS and not post["qualified"]:
                continue
            value = str(int(post["qualified"])) if breakdown == "qualified" else post[breakdown]
            expected[(day, value)] += 1
        table = tables[f"volume_{breakdown}"]
        keys = [c.key for c in table.columns]
        got = Counter({(row[0], key[2:]): n for row in table.rows for key, n in zip(keys[1:-1], row[1:-1]) if n})
        assert got == expected, breakdown
        assert all(row[-1] == sum(row[1:-1]) for row in table.rows)
    assert sum(tables["volume_qualified"].rows[i][-1] for i in range(len(tables["volume_qualified"].rows))) > 0 \
        or args.get("intent")


def test_japan_days_and_weekly_buckets(seeded):
    f = reports.parse_filter(window())
    rows = {r[0]: r[-1] for r in reports.overview(seeded.store, f, ("qualified",))[0].rows}
    assert rows["2026-11-18"] == len(TEXTS) and rows["2026-11-20"] == 2 * len(TEXTS) and rows["2026-11-19"] == 0
    long = reports.parse_filter({"from": "2026-06-01", "to": "2026-11-30"})
    table = reports.overview(seeded.store, long, ("qualified",))[0]
    assert table.columns[0].key == "week" and all(date.fromisoformat(r[0]).weekday() == 0 for r in table.rows)
    assert sum(r[-1] for r in table.rows) == 3 * len(TEXTS)


def test_response_time_percentiles_equal_brute_force(seeded):
    s = store_module
    with seeded.store.engine.connect() as conn:
        tickets = conn.execute(select(s.tickets.c.post_key, s.tickets.c.created_at, s.posts.c.created_at.label("posted"),
                                      s.analyses.c.priority)
                               .join(s.posts, s.posts.c.key == s.tickets.c.post_key)
                               .join(s.analyses, s.analyses.c.post_key == s.tickets.c.post_key)).mappings().all()
        replies = dict(conn.execute(select(s.exchanges.c.ticket_post_key, s.exchanges.c.sent_at)).all())
    by_priority: dict[str, list[int]] = {}
    reply_by_priority: dict[str, list[int]] = {}
    for t in tickets:
        by_priority.setdefault(t["priority"], []).append(round((t["created_at"] - t["posted"]).total_seconds()))
        if t["post_key"] in replies:
            reply_by_priority.setdefault(t["priority"], []).append(
                round((replies[t["post_key"]] - t["posted"]).total_seconds()))
    summary = reports.response_times(seeded.store, reports.parse_filter(window()))[0]
    got = {row[0]: row for row in summary.rows}
    assert set(got) == set(by_priority) | {"*"}
    for priority, values in by_priority.items():
        values.sort()
        row = got[priority]
        assert row[1] == len(values)
        # Percentiles come from per-day histograms: the middle of the exact value's bin
        # (connector.latency_bins; exact under 20 s, ±2.5 % above).
        for i, p in enumerate(reports.PERCENTILES):
            exact = values[math.ceil(p / 100 * len(values)) - 1]
            assert row[2 + i] * 60 == pytest.approx(latency_bins.bin_value(latency_bins.bin_of(exact)))
        answered = sorted(reply_by_priority.get(priority, []))
        assert row[5] == len(answered)
        if answered:
            exact = answered[math.ceil(0.5 * len(answered)) - 1]
            assert row[6] * 60 == pytest.approx(latency_bins.bin_value(latency_bins.bin_of(exact)))
            assert abs(row[6] * 60 - exact) <= exact * (latency_bins.RATIO - 1) / 2 + 0.5
    assert got["*"][1] == len(tickets) and got["*"][5] == len(replies) > 0


def test_percentile_is_nearest_rank():
    assert reports.percentile([], 50) is None
    assert reports.percentile([5], 99) == 5
    values = list(range(1, 101))
    assert [reports.percentile(values, p) for p in (50, 90, 99)] == [50, 90, 99]
    assert reports.percentile([1, 2, 3, 4], 50) == 2


@pytest.mark.parametrize("args", [window(), {"from": "2026-10-01", "to": "2026-11-30"},
                                  {"from": "2026-11-19", "to": "2027-01-31"}, {"from": "2026-09-15", "to": "2026-12-02"}])
def test_topics_equal_brute_force_and_leave_out_brand_names(seeded, args):
    """Whole months come from the monthly counts, the days around them from post_topics."""
    f = reports.parse_filter(args)
    expected: Counter = Counter()
    terms = watch_terms(seeded.watch)
    for post in brute_posts(seeded):
        day = report_day(post["created_at"])
        if post["qualified"] and (post["sentiment"] == "negative" or post["intent"] == "complaint") \
                and f.since <= day <= f.until:
            expected.update(set(topics_of_text(post["text"], exclude=terms, lang=post["lang"])))
    table = reports.topics(seeded.store, f, limit=1000)
    assert {row[1]: row[2] for row in table.rows} == dict(expected)
    assert [row[2] for row in table.rows] == sorted((row[2] for row in table.rows), reverse=True)
    topics = {row[1] for row in table.rows}
    assert "通信速度" in topics and "電話" in topics
    assert not any("ソラモバ" in t or "ハルカ珈琲" in t for t in topics)
    top = next(row for row in table.rows if row[1] == "通信速度")
    assert top[2] == (6 if f.since <= "2026-11-18" else 4) and "通信速度" in top[3]  # 2 posts a day, with examples


def test_whole_months():
    assert _whole_months("2026-10-01", "2026-11-30") == ["2026-10", "2026-11"]
    assert _whole_months("2026-10-02", "2026-11-30") == ["2026-11"]
    assert _whole_months("2026-10-02", "2026-11-29") == []
    assert _whole_months("2025-12-01", "2026-01-31") == ["2025-12", "2026-01"]


def test_topic_extraction_masks_brand_terms_before_tagging():
    terms = ("そら光", "そらあぷり")  # folded brand terms
    assert "アプリ" in topics_of_text("ソラアプリのアプリがすぐ落ちる。最悪", exclude=terms)
    assert topics_of_text("Sora Mobile app crashes", exclude=terms) == []  # English: no POS, no topics
    found = topics_of_text("ソラ光の工事日程がまた延期。料金だけ請求される", exclude=terms)
    assert "工事日程" in found and "光" not in found


def test_leaderboard_lists_open_tickets_by_risk(seeded):
    counts, board = reports.open_tickets(seeded.store, reports.parse_filter(window()))
    s = store_module
    with seeded.store.engine.connect() as conn:
        answered = {k for k in conn.execute(select(s.exchanges.c.ticket_post_key)).scalars()}
        all_tickets = conn.execute(select(s.tickets.c.post_key, s.analyses.c.risk_score, s.analyses.c.risk)
                                   .join(s.analyses, s.analyses.c.post_key == s.tickets.c.post_key)).all()
    open_ = [t for t in all_tickets if t.post_key not in answered]
    assert sorted(r[-1] for r in board.rows) == sorted(t.post_key for t in open_)
    assert [r[1] for r in board.rows] == sorted((r[1] for r in board.rows), reverse=True)
    assert {r[0]: r[1] for r in counts.rows} == {risk: sum(t.risk == risk for t in open_) for risk in reports.RISKS}


def test_qualification_log_counts_reasons(seeded, supervisor):
    f = reports.parse_filter(window())
    dropped, kept = reports.qualification(seeded.store, f)
    expected: Counter = Counter()
    for post in brute_posts(seeded):
        if not post["qualified"]:
            expected.update(set(post["reasons"]))
    assert {r[0]: r[1] for r in dropped.rows} == dict(expected)
    assert any("求人" in r[0] for r in dropped.rows)
    assert sum(r[2] for r in dropped.rows) == pytest.approx(100)
    page = supervisor.get("/decisions?" + "&".join(f"{k}={v}" for k, v in window(only="dropped").items()))
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and "今日は空がきれい" in text and "通信速度が遅すぎる" not in text


# --- filters, pages, CSV ------------------------------------------------------------------------
def test_filters_narrow_every_page_and_reach_the_csv_links(seeded, supervisor):
    query = "from=2026-11-17&to=2026-11-21&source=mastodon&sentiment=negative"
    for path in ("/overview", "/topics", "/risk", "/response-times", "/decisions", "/outbox"):
        page = supervisor.get(f"{path}?{query}").get_data(as_text=True)
        assert 'value="mastodon" selected' in page, path
        for link in re.findall(r'href="(/export/[^"]+)"', page):
            assert "source=mastodon" in link and "sentiment=negative" in link, (path, link)
            assert supervisor.get(link.replace("&amp;", "&")).status_code == 200
    overview = reports.overview(seeded.store, reports.parse_filter(
        {"from": "2026-11-17", "to": "2026-11-21", "source": "mastodon"}), ("platform",))[0]
    assert [c.key for c in overview.columns[1:-1]] == ["n_mastodon"]


def test_bad_filters_are_refused_with_the_reason(supervisor):
    page = supervisor.get("/overview?sentiment=angry")
    assert page.status_code == 400 and "sentiment=&#39;angry&#39;" in page.get_data(as_text=True)
    assert supervisor.get("/overview?from=2026-11-30&to=2026-11-01").status_code == 400
    assert supervisor.get("/topics?from=yesterday").status_code == 400


class _Tables(HTMLParser):
    """Cells of every <table data-table=…> as text."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._name: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and "data-table" in attrs:
            self._name = attrs["data-table"]
            self.tables[self._name] = []
        elif tag == "tr" and self._name:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None and self._name:
            self.tables[self._name].append(self._row)
            self._row = None
        elif tag == "table":
            self._name = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _csv_rows(response) -> list[list[str]]:
    text = response.get_data(as_text=True)
    assert text.startswith("\ufeff")
    return [[c[1:] if c.startswith("'") and c[1:2] in "=+-@" else c for c in row]
            for row in csv.reader(io.StringIO(text[1:]))]


@pytest.mark.parametrize("path", ["/overview", "/topics", "/response-times", "/decisions", "/risk", "/outbox"])
def test_csv_equals_the_table_on_the_page(seeded, supervisor, path):
    query = "from=2026-11-17&to=2026-11-21&lang=ja"
    if path == "/outbox":
        fail_one(seeded)
    parser = _Tables()
    parser.feed(supervisor.get(f"{path}?{query}").get_data(as_text=True))
    assert parser.tables, path
    for name, rows in parser.tables.items():
        csv_rows = _csv_rows(supervisor.get(f"/export/{name}.csv?{query}"))
        page_rows = rows
        if name in ("risk_leaderboard", "decisions", "outbox"):  # shown with links/badges: compare key columns
            assert len(csv_rows) == len(page_rows), name
            continue
        assert csv_rows == page_rows, name


def fail_one(svc):
    """A delivery the helpdesk refused for good."""
    svc.pipeline.ingest_raw(post_dict(id="900", text="ソラモバイル 圏外のまま", author={"id": "z"},
                                      created_at="2026-11-20T10:00:00Z"), "test")
    item = svc.store.outbox.claim_due(10, timedelta(seconds=60))[0]
    svc.store.outbox.mark_failed(item, "HTTP 422: priority is invalid")
    return item


def test_outbox_retry_button_requeues_a_failed_delivery(seeded, supervisor):
    svc = seeded
    item = fail_one(svc)
    page = supervisor.get("/outbox?from=2026-11-17&to=2026-11-21").get_data(as_text=True)
    assert "HTTP 422: priority is invalid" in page and f"/outbox/{item.id}/retry" in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert supervisor.post(f"/outbox/{item.id}/retry").status_code == 400  # no CSRF token
    assert svc.store.outbox.outbox_counts().get("failed") == 1
    response = supervisor.post(f"/outbox/{item.id}/retry", data={"csrf_token": token, "back": "https://evil.example/"})
    assert response.status_code == 302 and response.headers["Location"].endswith("/outbox")
    assert svc.store.outbox.outbox_counts().get("failed") is None


# --- hostile text -------------------------------------------------------------------------------
def test_hostile_post_text_is_inert_on_every_page_and_csv(seeded, supervisor):
    query = "from=2026-11-17&to=2026-11-21"
    for path in ("/", "/overview", "/topics", "/risk", "/decisions", "/outbox", "/response-times"):
        html = supervisor.get(f"{path}?{query}").get_data(as_text=True)
        assert "<script>alert" not in html and "<img src=x" not in html, path
    topics = supervisor.get(f"/topics?{query}").get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in topics  # shown as text in the examples
    rows = list(csv.reader(io.StringIO(supervisor.get(f"/export/topics.csv?{query}").get_data(as_text=True)[1:])))
    assert all(not cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)
    table = reports.ReportTable("t", "t", "t", [reports.Column("text", "t", "t")], [["=cmd|' /C calc'!A0"]])
    assert reports.to_csv(table, "en").splitlines()[1] == "'=cmd|' /C calc'!A0"



@pytest.mark.parametrize("cell", [" =cmd|' /C calc'!A0", "\u3000=1+1", "＝cmd|' /C calc'!A0", "＋1＋1", "－1＋1",
                                  "＠SUM(A1)", "  ＝HYPERLINK(\"http://evil\")", "\u200b=1+1", "\n=1+1"])
def test_csv_neutralises_formulas_behind_blanks_and_in_full_width(cell):
    """Spreadsheets skip leading blanks and (in Japanese locales) read ＝＋－＠ as = + - @, so
    " =cmd" and "＝cmd" ran as formulas although the ASCII "=cmd" was neutralised (issue 16 #19)."""
    table = reports.ReportTable("t", "t", "t", [reports.Column("text", "t", "t")], [[cell]])
    rows = list(csv.reader(io.StringIO(reports.to_csv(table, "en"))))
    assert rows[1] == ["'" + cell]


def test_csv_leaves_ordinary_text_alone():
    table = reports.ReportTable("t", "t", "t", [reports.Column("text", "t", "t")],
                                [[" ソラモバイル"], ["通信速度 = 遅い"], ["ａｂｃ"]])
    rows = list(csv.reader(io.StringIO(reports.to_csv(table, "en"))))
    assert rows[1:] == [[" ソラモバイル"], ["通信速度 = 遅い"], ["ａｂｃ"]]


def test_topics_in_svg_are_escaped(seeded):
    from connector.web.charts import bars
    table = reports.ReportTable("topics", "t", "t", [reports.Column("topic", "t", "t"), reports.Column("posts", "p", "p", "int")],
                                [["<script>x</script>", 3]], chart="bars", series=["posts"])
    svg = str(bars(table, "ja"))
    assert "<script>" not in svg and "&lt;script&gt;" in svg


# --- the CLI --------------------------------------------------------------------------------------
def test_report_command_prints_the_same_figures(seeded, env):
    from connector.cli import main

    def invoke(args):
        return CliRunner().invoke(main, args, env=env)
    result = invoke(["report", "--since", "2026-11-17", "--until", "2026-11-21", "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    f = reports.parse_filter(window())
    expected = {t.name: t.as_json() for t in reports.full_report(seeded.store, f)}
    assert {t["name"]: t for t in data["tables"]} == json.loads(json.dumps(expected, ensure_ascii=False))
    text = invoke(["report", "--since", "2026-11-17", "--until", "2026-11-21"]).output
    assert "Top complaint topics" in text and "通信速度" in text
    csv_out = invoke(["report", "--since", "2026-11-17", "--until", "2026-11-21", "--format", "csv",
                               "--label", "sentiment=negative", "--source", "x"]).output
    assert "# volume_sentiment" in csv_out and "# topics" in csv_out
    bad = invoke(["report", "--label", "mood=angry"])
    assert bad.exit_code != 0 and "mood" in bad.output


def test_user_create_and_demo_account(env, app, monkeypatch, caplog):
    from connector.cli import main
    from connector.cli import pipeline as cli
    from tests.conftest import csrf_from
    made = CliRunner().invoke(main, ["user", "create", "tanaka", "--password-stdin"], env=env,
                              input="a-good-long-password\n")
    assert made.exit_code == 0 and "created tanaka" in made.output and "a-good-long-password" not in made.output
    again = CliRunner().invoke(main, ["user", "create", "tanaka", "--password-stdin"], env=env, input="x" * 20 + "\n")
    assert again.exit_code != 0 and "exists already" in again.output
    short = CliRunner().invoke(main, ["user", "create", "kato", "--password-stdin"], env=env, input="short\n")
    assert short.exit_code != 0 and "12 characters" in short.output
    stored = app.extensions["yorisoi"].store.accounts.user_password_hash("tanaka")
    assert stored.startswith("scrypt:") and "a-good-long-password" not in stored
    # The demo creates one account and prints its password once (to the terminal, not the log).
    monkeypatch.setattr(cli, "_serve", lambda *a, **k: None)
    monkeypatch.setattr(cli, "DEMO_FEED", cli.DEMO_FEED.parent / "feed.jsonl")
    # The demo checks its port before loading anything: give it one nothing listens on, so a
    # demo running on this machine (8750) does not fail the test.
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = str(probe.getsockname()[1])
    with caplog.at_level("DEBUG"):
        demo = CliRunner().invoke(main, ["demo"], env={**env, "YORISOI_PORT": free_port})
    assert demo.exit_code == 0, demo.output
    password = re.search(r"user demo  password (\S+)", demo.output).group(1)
    assert password not in caplog.text
    client = app.test_client()
    token = csrf_from(client.get("/login").get_data(as_text=True))
    assert client.post("/login", data={"name": "demo", "password": password, "csrf_token": token}).status_code == 302
    assert client.get("/").status_code == 200


def test_report_since_days():
    from datetime import datetime, timezone
    now = datetime(2026, 11, 22, 20, 0, tzinfo=timezone.utc)  # 11-23 05:00 in Japan
    assert reports.parse_since("7d", now) == date(2026, 11, 17)
    assert reports.parse_since("2w", now) == date(2026, 11, 10)
    with pytest.raises(reports.FilterError):
        reports.parse_since("soon", now)


def test_migration_fills_report_tables_of_an_existing_database(seeded):
    """A database from before the dashboard (schema 1) gets its counts at the upgrade."""
    s = store_module
    f = reports.parse_filter(window())
    year = reports.parse_filter({"from": "2026-01-01", "to": "2026-12-31"})
    before = ([t.rows for t in reports.overview(seeded.store, f)], reports.response_times(seeded.store, f)[0].rows,
              reports.topics(seeded.store, year).rows)
    with seeded.store.engine.begin() as conn:
        for table in (s.report_daily, s.report_daily_label, s.report_reasons, s.ticket_facts, s.report_topic_monthly,
                      s.report_response_hist):
            conn.execute(table.delete())
        conn.execute(s.schema_version.delete())
        conn.execute(s.schema_version.insert().values(version=1, applied_at=utcnow()))
    upgraded = Store(seeded.store.url)
    after = ([t.rows for t in reports.overview(upgraded, f)], reports.response_times(upgraded, f)[0].rows,
             reports.topics(upgraded, year).rows)
    upgraded.engine.dispose()
    assert after == before


# --- bounded ranges (issue 16 #9) ---------------------------------------------------------------
def test_a_range_longer_than_two_years_is_refused_not_materialised(seeded, supervisor, env):
    """`/?from=0001-01-01&to=9999-12-31` made every figure build one row per day (3.6 million
    days, gigabytes); a link could trigger it. The filter itself bounds the range, so the pages,
    the CSV export and `yorisoi report` all refuse it with the parameters named."""
    from connector.cli import main
    with pytest.raises(reports.FilterError, match="731 days"):
        reports.parse_filter({"from": "0001-01-01", "to": "9999-12-31"})
    assert reports.parse_filter({"from": "2024-11-21", "to": "2026-11-21"}).since == "2024-11-21"  # 731 days
    with pytest.raises(reports.FilterError, match="from=2024-11-20"):
        reports.parse_filter({"from": "2024-11-20", "to": "2026-11-21"})
    for path in ("/overview", "/topics", "/export/topics.csv"):
        response = supervisor.get(f"{path}?from=2019-01-01&to=2026-11-21")
        assert response.status_code == 400, path
    page = supervisor.get("/overview?from=2019-01-01&to=2026-11-21").get_data(as_text=True)
    assert "731 days" in page
    result = CliRunner().invoke(main, ["report", "--since", "2019-01-01", "--until", "2026-11-21"], env=env)
    assert result.exit_code != 0 and "731 days" in result.output
    result = CliRunner().invoke(main, ["report", "--since", "9999d"], env=env)
    assert result.exit_code != 0 and "731 days" in result.output
