"""The listening dashboard: the voice of the customer as numbers, for supervisors.

Thin views: the figures come from connector/reports.py (shared with `yorisoi report`), the
charts from connector/web/charts.py. Every page takes the same filters (brand, source, date
range, labels) from the query string, and every table has a CSV export with those filters.
"""
from __future__ import annotations

from typing import Any, Callable

from flask import Blueprint, Response, abort, g, redirect, render_template, request, url_for

from connector import reports
from connector import today as today_module
from connector.evidence import render as render_evidence
from connector.labels import VALUE_NAMES, status_word, value_name
from connector.reports import FilterError, ReportTable
from connector.services import services
from connector.sidebar import storm_summary
from connector.sources import PLATFORM_NAMES
from connector.store import LABEL_COLUMNS, ReportFilter
from connector.web import auth
from connector.web.charts import render as render_chart

bp = Blueprint("dashboard", __name__)
TICKETS_PER_PAGE = 50
TICKETS_COUNT_CAP = 10_000
#: Open tickets listed on the home page (the most urgent; the rest are one click away).
HOME_BACKLOG_SHOWN = 30

#: Pages in the navigation: (endpoint, i18n key).
PAGES = (("dashboard.today", "nav_today"), ("dashboard.overview", "nav_overview"), ("dashboard.topics", "nav_topics"),
         ("dashboard.risk", "nav_risk"), ("dashboard.response_times", "nav_response"),
         ("dashboard.tickets", "nav_tickets"), ("dashboard.decisions", "nav_decisions"),
         ("dashboard.outbox", "nav_outbox"), ("dashboard.storms", "nav_storms"),
         ("dashboard.weekly", "nav_weekly"))


@bp.record_once
def _globals(state: Any) -> None:
    from connector.report_time import format_duration, format_jst
    state.app.jinja_env.globals.update(nav_pages=PAGES, zip=zip, L=_pick, cluster_term=today_module.cluster_term,
                                        vn=value_name)
    state.app.jinja_env.filters.update(jst=format_jst, duration=lambda s: format_duration(s, g.get("lang", "ja")),
                                       evidence=lambda line: render_evidence(line, g.get("lang", "ja")),
                                       status=lambda value: status_word(value, g.get("lang", "ja")))


def _pick(ja: str, en: str) -> str:
    """Inline bilingual text in templates: L('未対応', 'Open')."""
    return en if g.get("lang") == "en" else ja


@bp.before_request
def _login_required():
    if request.endpoint == "dashboard.healthz":
        return None  # load balancers and uptime checks have no account
    return auth.require_login()


@bp.app_context_processor
def _active_alerts() -> dict[str, Any]:
    """Spike alerts still running, for the banner on every dashboard page."""
    def active() -> list[dict[str, Any]]:
        try:
            return [a for a in services().store.storms.list_alerts(limit=20) if a["ended_at"] is None]
        except Exception:  # the banner must never break a page
            return []
    return {"active_alerts": active, "streams_down": _streams_down}


def _stream_rows() -> list[Any]:
    """Each configured stream's health (connector/stream_health.py), for the outbox page."""
    from connector.db import utcnow
    from connector.stream_health import health_rows
    from connector.streaming import configured_streams, stream_status
    svc = services()
    names = [s.name for s in configured_streams(svc)]
    return health_rows(stream_status(svc.store.sources, names), utcnow())


def _streams_down() -> list[Any]:
    """Streams not delivering, for the banner on every page (their networks are polled)."""
    from connector.stream_health import down
    try:
        return down(_stream_rows())
    except Exception:  # the banner must never break a page
        return []


@bp.errorhandler(FilterError)
def _bad_filter(exc: FilterError):
    return render_template("error.html", message=str(exc), f=None, query=[]), 400


def _filter() -> ReportFilter:
    latest = None if request.args.get("to") else services().store.reports.report_latest_day()
    return reports.parse_filter(request.args, latest_day=latest)


def _only() -> bool | None:
    return {"qualified": True, "dropped": False}.get(request.args.get("only") or "")


def _context(f: ReportFilter, **extra: Any) -> dict[str, Any]:
    query = reports.filter_query(f)
    return dict(f=f, query=query, facets=services().store.reports.report_facets(f), label_columns=LABEL_COLUMNS,
                value_names=VALUE_NAMES, platform_names=PLATFORM_NAMES, pages=PAGES,
                chosen_labels=dict(f.labels), render_chart=render_chart, **extra)


# --- pages --------------------------------------------------------------------------------
@bp.get("/")
def today():
    """「いま対応が必要なもの」: the supervisor's home page."""
    svc = services()
    data = today_module.build(svc.store, svc.settings.env, helpdesk=svc.helpdesk)
    return render_template("today.html", t=data, status_note=today_module.status_note(data.sync, g.lang),
                           status_name=today_module.status_name, shown=HOME_BACKLOG_SHOWN)


@bp.get("/reports/weekly")
def weekly():
    """This week against the previous one; ?format=xlsx|csv|json downloads the same tables,
    ?to=YYYY-MM-DD ends the week on another day. The page prints on A4 as it is."""
    from datetime import date

    from connector import weekly as weekly_module
    svc = services()
    until = None
    if request.args.get("to"):
        try:
            until = date.fromisoformat(request.args["to"])
        except ValueError:
            raise FilterError(f"to={request.args['to']!r}: expected a date like 2026-11-20 (YYYY-MM-DD)") from None
    report = weekly_module.build(svc.store, svc.settings.env, until)
    fmt = request.args.get("format") or "html"
    stem = f"yorisoi-weekly-{report.this.since}-{report.this.until}"
    if fmt == "xlsx":
        return Response(weekly_module.to_xlsx(report, g.lang), headers={
            "Content-Disposition": f'attachment; filename="{stem}.xlsx"', "Cache-Control": "no-store"},
            mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    if fmt == "csv":
        return Response("\ufeff" + weekly_module.to_csv(report, g.lang), mimetype="text/csv", headers={
            "Content-Disposition": f'attachment; filename="{stem}.csv"', "Cache-Control": "no-store"})
    if fmt == "json":
        return weekly_module.to_json(report, g.lang)
    return render_template("weekly.html", report=report, display_rows=weekly_module.display_rows,
                           render_chart=render_chart)


@bp.get("/overview")
def overview():
    f = _filter()
    svc = services()
    return render_template("overview.html", tables=reports.overview(svc.store, f),
                           totals=reports.totals(svc.store, f), **_context(f))


@bp.get("/topics")
def topics():
    f = _filter()
    return render_template("report.html", heading="nav_topics", intro="topics_intro",
                           tables=[reports.topics(services().store, f)], **_context(f))


@bp.get("/risk")
def risk():
    f = _filter()
    counts, board = reports.open_tickets(services().store, f)
    return render_template("risk.html", counts=counts, board=board, **_context(f))


@bp.get("/response-times")
def response_times():
    f = _filter()
    return render_template("report.html", heading="nav_response", intro="response_intro",
                           tables=reports.response_times(services().store, f), **_context(f))


@bp.get("/tickets")
def tickets():
    """Every ticket, a page at a time (no silent cap), with search and filters."""
    svc = services()
    text = (request.args.get("q") or "").strip()[:200]
    priority = request.args.get("priority") or ""
    state = request.args.get("state") or ""
    platform = request.args.get("source") or ""
    if priority not in ("", *reports.PRIORITIES) or state not in ("", "open", "answered"):
        raise FilterError("priority must be one of urgent, high, normal, low; state open or answered")
    try:
        page = max(1, int(request.args.get("page") or 1))
    except ValueError:
        raise FilterError(f"page={request.args.get('page')!r}: expected a page number") from None
    # With a search or filter the count stops at TICKETS_COUNT_CAP ("10,000件以上"): counting
    # every match of a common word costs more than the page itself (issue 19).
    filtered = bool(text or priority or state or platform)
    total, rows = svc.store.outbox.search_tickets(text=text, priority=priority, state=state, platform=platform,
                                                  offset=(page - 1) * TICKETS_PER_PAGE, limit=TICKETS_PER_PAGE,
                                                  count_cap=TICKETS_COUNT_CAP if filtered else None)
    capped = filtered and total > TICKETS_COUNT_CAP
    pages = max(1, -(-total // TICKETS_PER_PAGE))
    has_next = page < pages or (capped and len(rows) == TICKETS_PER_PAGE)
    search = [(k, v) for k, v in (("q", text), ("priority", priority), ("state", state), ("source", platform)) if v]
    return render_template("tickets.html", tickets=rows, total=min(total, TICKETS_COUNT_CAP) if capped else total,
                           capped=capped, page=page, pages=pages, has_next=has_next, per_page=TICKETS_PER_PAGE, search=search,
                           q=text, priority=priority, state=state, source=platform, platform_names=PLATFORM_NAMES,
                           priorities=reports.PRIORITIES,
                           counts=svc.store.posts.counts(), outbox_counts=svc.store.outbox.outbox_counts())


@bp.get("/posts/<path:key>")
def post_detail(key: str):
    svc = services()
    loaded = svc.store.posts.load_post(key)
    if loaded is None:
        abort(404)
    post, decision, analysis = loaded
    ref = svc.store.outbox.ticket_for(key)
    local_ticket = None
    if ref is not None and ref.helpdesk == "local" and hasattr(svc.helpdesk, "ticket"):
        local_ticket = svc.helpdesk.ticket(int(ref.ticket_id))
    return render_template("post.html", post=post, decision=decision, analysis=analysis, ref=ref,
                           local_ticket=local_ticket, thread=svc.store.posts.thread_posts(key),
                           exchanges=svc.store.exchanges.list_exchanges(key), storm=storm_summary(svc.store, key),
                           label_min=today_module.storm_label_min(svc.settings.env))


@bp.get("/decisions")
def decisions():
    f = _filter()
    store = services().store
    only = request.args.get("only") or ""
    return render_template("decisions.html", tables=reports.qualification(store, f),
                           volume=reports.overview(store, f, ("qualified",))[0],
                           recent=reports.recent_decisions(store, f, _only()), only=only, **_context(f))


@bp.get("/outbox")
def outbox():
    f = _filter()
    svc = services()
    counts, table = reports.outbox(svc.store, f)
    return render_template("outbox.html", table=table, counts=counts, all_counts=svc.store.outbox.outbox_counts(("pending", "sending", "failed")),
                           streams=_stream_rows(), **_context(f))


@bp.get("/storms")
def storms():
    """Active and past storms with their timelines (posts per 5 minutes) and spike alerts."""
    store = services().store
    rows = []
    for storm in store.storms.list_storms(min_size=2, limit=100):
        timeline = store.storms.storm_timeline(storm["id"])
        start = timeline[0][0] if timeline else storm["started_at"]
        buckets: dict[int, int] = {}
        for at, _ in timeline:
            slot = int((at - start).total_seconds() // 300)
            buckets[slot] = buckets.get(slot, 0) + 1
        series = [buckets.get(i, 0) for i in range(max(buckets) + 1)] if buckets else []
        first = store.storms.storm_members_of(storm["id"], limit=1)
        rows.append({**storm, "series": series[:48], "first": first[0] if first else None,
                     "statement": store.storms.latest_statement(storm["id"])})
    return render_template("storms.html", storms=rows, alerts=store.storms.list_alerts(limit=50),
                           label_min=today_module.storm_label_min(services().settings.env))


#: Longest public statement on a storm: an X post's worth of Japanese, with room to spare.
STATEMENT_MAX = 1000


@bp.post("/storms/<int:storm_id>/statement")
def storm_statement(storm_id: int):
    """A supervisor records the team's public statement on a storm (the outage notice agents
    point customers to); the agent sidebar shows the newest with every ticket of the storm."""
    from connector.sidebar import http_url
    from connector.store import utcnow
    store = services().store
    if store.storms.storm(storm_id) is None:
        abort(404)
    text = (request.form.get("text") or "").strip()
    url = (request.form.get("url") or "").strip()
    if not text or len(text) > STATEMENT_MAX or (url and http_url(url) is None):
        abort(400, description=f"声明文（1〜{STATEMENT_MAX}文字）と、任意で http(s) の URL を入力してください。 / "
                               f"Give the statement (1-{STATEMENT_MAX} characters) and, optionally, an http(s) URL.")
    store.storms.add_statement(storm_id, text, url or None, auth.current_user() or "?", utcnow())
    return redirect(url_for("dashboard.storms") + f"#storm-{storm_id}")


@bp.post("/outbox/<int:outbox_id>/retry")
def retry(outbox_id: int):
    svc = services()
    svc.store.outbox.retry_failed(outbox_id)
    svc.wake_worker()
    return redirect(_back_to_outbox())


@bp.post("/outbox/retry-failed")
def retry_all():
    svc = services()
    svc.store.outbox.retry_failed()
    svc.wake_worker()
    return redirect(_back_to_outbox())


def _back_to_outbox() -> str:
    target = auth.same_site_path(request.form.get("back"))
    return target if target and target.startswith("/outbox") else url_for("dashboard.outbox")


# --- CSV ----------------------------------------------------------------------------------
def _tables(name: str, f: ReportFilter) -> list[ReportTable]:
    store = services().store
    makers: dict[str, Callable[[], list[ReportTable]]] = {
        "volume_": lambda: reports.overview(store, f),
        "topics": lambda: [reports.topics(store, f)],
        "open_by_risk": lambda: list(reports.open_tickets(store, f)),
        "risk_leaderboard": lambda: list(reports.open_tickets(store, f)),
        "response_summary": lambda: reports.response_times(store, f),
        "ticket_": lambda: reports.response_times(store, f),
        "reply_": lambda: reports.response_times(store, f),
        "dropped_reasons": lambda: reports.qualification(store, f),
        "kept_reasons": lambda: reports.qualification(store, f),
        "decisions": lambda: [reports.recent_decisions(store, f, _only())],
        "outbox": lambda: [reports.outbox(store, f)[1]],
    }
    for prefix, make in makers.items():
        if name.startswith(prefix):
            return make()
    return []


@bp.get("/export/<name>.csv")
def export_csv(name: str):
    f = _filter()
    table = next((t for t in _tables(name, f) if t.name == name), None)
    if table is None:
        abort(404)
    # UTF-8 with a BOM: Excel (still the tool of most Japanese support teams) reads it as
    # UTF-8 instead of Shift_JIS only when the BOM is there.
    body = "\ufeff" + reports.to_csv(table, g.lang)
    filename = f"yorisoi-{name}-{f.since}-{f.until}.csv"
    return Response(body, mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"})


@bp.get("/healthz")
def healthz():
    svc = services()
    return {"ok": True, "helpdesk": svc.helpdesk.name, "outbox": svc.store.outbox.outbox_counts()}


@bp.app_template_global()
def page_url(endpoint: str, query: list[tuple[str, str]] | None = None, **values: Any) -> str:
    """A dashboard URL carrying the current filters (and any extra parameters)."""
    from urllib.parse import urlencode
    pairs = list(query or []) + [(k, str(v)) for k, v in values.items() if v not in (None, "")]
    return url_for(endpoint) + ("?" + urlencode(pairs) if pairs else "")


@bp.app_template_global()
def csv_url(name: str, query: list[tuple[str, str]] | None = None) -> str:
    from urllib.parse import urlencode
    return url_for("dashboard.export_csv", name=name) + ("?" + urlencode(query) if query else "")
