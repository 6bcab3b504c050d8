"""`yorisoi` commands. Thin: each one calls the same functions the web app uses.

They are registered on the Flask app (`flask --app connector replay …` works too) and exposed
as the `yorisoi` console script, which builds the app only when a command runs.
"""
from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable

import click
from flask import Flask, current_app

from connector.config import DEMO_FEED, ConfigError, env_groups
from connector.pipeline import replay_summary
from connector.watch import WatchConfigError

#: Where the variables are documented; `check-config --help` says it too.
_CONFIG_WHERE = ("Every variable is declared once beside the code that reads it and listed, per integration, "
                 "in README.md → Configuration (tables generated from connector.config.env_groups()).")
_EPILOG = "Configuration (environment variables):\n\n" + "\n\n".join(
    f"[{title}] {name} (default: {default}) — {meaning}"
    for title, group in env_groups() for name, default, meaning in group) + "\n\n" + _CONFIG_WHERE


def _app() -> Flask:
    """The current Flask app under `flask …`, else one built from the environment."""
    try:
        return current_app._get_current_object()  # type: ignore[attr-defined]
    except RuntimeError:
        from connector import create_app
        try:
            return create_app()
        except (ConfigError, WatchConfigError) as exc:
            raise click.ClickException(str(exc)) from None


def _services(app: Flask):
    return app.extensions["yorisoi"]


def _one_instance(app: Flask) -> Any:
    """Hold the SQLite database's instance lock for a long-running command (serve, poll, demo)."""
    from connector.db.engine import InstanceLocked, instance_lock

    lock = instance_lock(_services(app).settings.database_url)
    try:
        lock.__enter__()
    except InstanceLocked as exc:
        raise click.ClickException(str(exc)) from None
    click.get_current_context().call_on_close(lambda: lock.__exit__(None, None, None))
    return lock


@click.group(epilog=_EPILOG, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="yorisoi")
def main() -> None:
    """Yorisoi (寄り添い): public posts about your brand become tickets in your helpdesk.

    Watches posts, keeps the ones that qualify, analyses them in Japanese and English, and
    delivers each one as exactly one ticket through a crash-safe outbox.
    """


def _replay_file(app: Flask, path: Path, source: str, wait: float,
                 lines: Iterable[str] | None = None) -> dict[str, Any]:
    svc = _services(app)
    svc.store.outbox.release_dead_claims()
    if lines is None:
        with path.open(encoding="utf-8", errors="replace") as handle:
            read, outcomes = svc.pipeline.ingest_lines(handle, source=source)
    else:
        read, outcomes = svc.pipeline.ingest_lines(lines, source=source)
    delivery = svc.pipeline.drain(max_wait=wait)
    counts = svc.store.outbox.outbox_counts()
    return replay_summary(read, outcomes, delivery, pending=counts.get("pending", 0) + counts.get("sending", 0))


def demo_feed_lines(path: Path, now: datetime | None = None, newest_ago: timedelta = timedelta(minutes=5)) -> list[str]:
    """The demo feed with every post moved by the same amount so that the newest one was
    posted `newest_ago` before `now`: response times, "today" and the 7-day report then show
    the demo on first run, whatever the day. The gaps between posts stay as recorded."""
    now = now or datetime.now(timezone.utc)
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def parse(text: str) -> datetime:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    newest = max(parse(r["created_at"]) for r in records if r.get("created_at"))
    shift = (now - newest_ago) - newest
    shift -= timedelta(microseconds=shift.microseconds)  # whole seconds, like the recorded times
    for record in records:
        if record.get("created_at"):
            moved = parse(record["created_at"]) + shift
            record["created_at"] = moved.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return [json.dumps(r, ensure_ascii=False) for r in records]


def _other_helpdesk_note(app: Flask, summary: dict[str, Any]) -> str | None:
    """When a replay skipped posts as already stored and they became tickets in another
    helpdesk (typically: the demo ran with `local`, now YORISOI_HELPDESK=zendesk), say so and
    how to start fresh, instead of a silent "duplicates skipped"."""
    svc = _services(app)
    if not summary.get("duplicates_skipped"):
        return None
    others = {hd: n for hd, n in svc.store.outbox.ticket_counts_by_helpdesk().items() if hd != svc.helpdesk.name}
    if not others:
        return None
    where = ", ".join(f"{hd} ({n})" for hd, n in sorted(others.items()))
    data_dir = svc.settings.data_dir
    return (f"{summary['duplicates_skipped']} posts were already stored and were skipped: their tickets are in "
            f"another helpdesk ({where}), not in {svc.helpdesk.name}. To send them to {svc.helpdesk.name}, start "
            f"with a fresh database: YORISOI_DATA_DIR={data_dir}-{svc.helpdesk.name} yorisoi demo "
            f"(or move {data_dir} away).\n"
            f"既に保存済みの投稿 {summary['duplicates_skipped']} 件をスキップしました（チケットは {where} にあり、"
            f"{svc.helpdesk.name} には送っていません）。新しいデータベースで始めるには "
            f"YORISOI_DATA_DIR={data_dir}-{svc.helpdesk.name} yorisoi demo を実行してください。")


def check_port_free(host: str, port: int) -> None:
    """Fail in one line, before anything is changed, when the address is taken."""
    import socket
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError:
            raise click.ClickException(
                f"port {port} on {host} is already in use (another yorisoi?); stop it, or choose another "
                f"with --port or YORISOI_PORT / ポート {port} は使用中です") from None


def _print_summary(summary: dict[str, Any]) -> None:
    click.echo(f"read {summary['read']} · qualified {summary['qualified']} · tickets created "
               f"{summary['tickets_created']} · follow-up comments {summary['comments_added']} · duplicates "
               f"skipped {summary['duplicates_skipped']} · dropped {summary['dropped']} · rejected "
               f"{summary['rejected']} · still pending {summary['pending']}")
    for error in summary["errors"][:50]:
        where = f"line {error['line']}: " if "line" in error else f"{error.get('post')}: "
        field = f"{error['field']}: " if error.get("field") else ""
        click.echo(f"  ! {where}{field}{error['message']}", err=True)
    if len(summary["errors"]) > 50:
        click.echo(f"  … and {len(summary['errors']) - 50} more", err=True)


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the counts and errors.")
@click.option("--wait", default=60.0, show_default=True,
              help="Seconds to keep retrying deliveries the helpdesk postponed (429, 5xx) before exiting.")
def replay(file: Path, as_json: bool, wait: float) -> None:
    """Push a JSONL file of normalized posts through the whole pipeline once.

    Each line is one post. Posts already stored are skipped, so running the same file twice
    creates no new tickets. Exit code 0 even when some lines were rejected (see errors).
    """
    app = _app()
    summary = _replay_file(app, file, "replay", wait)
    note = _other_helpdesk_note(app, summary)
    if as_json:
        click.echo(json.dumps({**summary, **({"note": note} if note else {})}, ensure_ascii=False))
    else:
        _print_summary(summary)
        if note:
            click.echo(note, err=True)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.option("--limit", type=int, default=None, help="Only the newest N tickets.")
def tickets(as_json: bool, limit: int | None) -> None:
    """List the tickets created in the configured helpdesk, newest first."""
    svc = _services(_app())
    rows = svc.store.outbox.list_tickets(helpdesk=svc.helpdesk.name, limit=limit)
    records = [{
        "ticket_id": r["ticket_id"], "helpdesk": r["helpdesk"], "external_id": r["external_id"],
        "priority": r["priority"], "tags": r["tags"], "subject": r["subject"], "post_url": r["post_url"],
        "ticket_url": r["url"], "follow_ups": r["follow_ups"], "created_at": r["created_at"].isoformat(),
    } for r in rows]
    if as_json:
        click.echo(json.dumps(records, ensure_ascii=False, indent=1))
        return
    if not records:
        click.echo("no tickets yet")
        return
    for rec in records:
        click.echo(f"#{rec['ticket_id']:>5} [{rec['priority']:<6}] {rec['subject']}")
        click.echo(f"        {rec['external_id']}  {rec['post_url'] or ''}")
        click.echo(f"        tags: {' '.join(rec['tags'])}" + (f"  (+{rec['follow_ups']} follow-ups)" if rec["follow_ups"] else ""))


@main.command()
@click.option("--wait", default=60.0, show_default=True, help="Seconds to keep retrying postponed deliveries.")
@click.option("--retry-failed", is_flag=True, help="First put failed deliveries back in the queue.")
def deliver(wait: float, retry_failed: bool) -> None:
    """Deliver what is waiting in the outbox, then exit."""
    svc = _services(_app())
    svc.store.outbox.release_dead_claims()
    if retry_failed:
        click.echo(f"requeued {svc.store.outbox.retry_failed()} failed deliveries")
    report = svc.pipeline.drain(max_wait=wait)
    click.echo(f"tickets created {report.created} · comments {report.commented} · retrying {report.retried} "
               f"· failed {report.failed}" + (f" · stopped: {report.stopped}" if report.stopped else ""))


DEMO_USER = "demo"


def _demo_replies(app: Flask) -> None:
    """Answer every other demo ticket as agent 佐藤, so the dashboard's reply times and open
    tickets have something to show. Through the normal reply path (the local source records
    the reply, no network); one dedupe key per ticket, so a second run sends nothing new."""
    from connector.replies import ReplyFailed, UnknownTicket
    svc = _services(app)
    for row in svc.store.outbox.list_tickets(helpdesk=svc.helpdesk.name)[::2]:
        try:
            svc.reply(ticket_id=row["ticket_id"], agent="佐藤", dedupe_key=f"demo:reply:{row['ticket_id']}",
                      text="ソラモバイルの佐藤です。ご不便をおかけしております。状況を確認のうえ、DMでご案内いたします。")
        except (UnknownTicket, ReplyFailed):
            continue  # the demo goes on without this one reply


def _serve(app: Flask, host: str, port: int, poll: bool = False) -> None:
    from waitress import serve as waitress_serve
    svc = _services(app)
    svc.start_worker()
    poller_thread = None
    supervisor = None
    if poll:
        from connector.poller import Poller, PollerThread
        from connector.streaming import StreamSupervisor
        poller = Poller(svc)
        if not poller.sources:
            click.echo("no network is configured to poll (see X_BEARER_TOKEN, MASTODON_INSTANCES, "
                       "BLUESKY_HANDLE, [[feed]]); serving without the poller", err=True)
        else:
            poller_thread = PollerThread(poller, wake_delivery=svc.wake_worker)
            poller_thread.start()
            supervisor = StreamSupervisor(svc, wake_delivery=svc.wake_worker)
            supervisor.start()
    click.echo(f"Yorisoi is listening on http://{host}:{port}/  (helpdesk: {svc.helpdesk.name}"
               f"{'; polling ' + ', '.join(s.platform for s in poller_thread.poller.sources) if poller_thread else ''}"
               f"{'; streaming ' + ', '.join(s.name for s in supervisor.streams) if supervisor and supervisor.streams else ''}"
               f"; Ctrl+C to stop)")
    try:
        waitress_serve(app, host=host, port=port, threads=8, ident="yorisoi")
    except KeyboardInterrupt:  # Ctrl+C outside waitress's own loop: a clean stop, not a traceback
        pass
    finally:
        if supervisor is not None:
            supervisor.stop()
        if poller_thread is not None:
            poller_thread.stop()
        svc.close()
    click.echo("stopped / 停止しました")


@main.command()
@click.option("--host", default=None, help="Address to listen on (default: YORISOI_HOST).")
@click.option("--port", type=int, default=None, help="Port (default: YORISOI_PORT).")
@click.option("--poll", is_flag=True, help="Also run the source poller in this process (small installs).")
def serve(host: str | None, port: int | None, poll: bool) -> None:
    """Run the connector: web app, inbound webhooks and the delivery worker.

    With --poll, the configured networks (X, Mastodon, Bluesky, RSS) are polled in-process
    too, as `yorisoi poll` would; larger installs run `yorisoi poll` as its own process.
    """
    from connector.config import Settings
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    host, port = host or settings.host, port or settings.port
    check_port_free(host, port)
    app = _app()
    _one_instance(app)
    _serve(app, host, port, poll=poll)


@main.command()
@click.option("--host", default=None, help="Address to listen on (default: YORISOI_HOST).")
@click.option("--port", type=int, default=None, help="Port (default: YORISOI_PORT).")
@click.option("--no-serve", is_flag=True, help="Load the demo feed and exit without serving.")
def demo(host: str | None, port: int | None, no_serve: bool) -> None:
    """Load the bundled demo feed (a fictional brand, ソラモバイル) and serve the dashboard.

    Uses the embedded defaults: SQLite in ./data, the built-in `local` helpdesk and the
    bundled watch file. Loading twice is harmless: posts already stored are skipped.
    """
    from connector.config import Settings
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    host, port = host or settings.host, port or settings.port
    if not no_serve:
        check_port_free(host, port)  # before the feed is loaded or the password reset
    app = _app()
    if not no_serve:
        _one_instance(app)
    summary = _replay_file(app, DEMO_FEED, "demo", wait=30.0, lines=demo_feed_lines(DEMO_FEED))
    _print_summary(summary)
    note = _other_helpdesk_note(app, summary)
    if note:
        click.echo(note, err=True)
    _demo_replies(app)
    if not no_serve:
        # One supervisor account with a fresh password each start, shown here once and
        # never logged (the dashboard needs a login; the demo must not need an admin step).
        from connector.web.auth import generate_password, hash_password
        password = generate_password()
        _services(app).store.accounts.create_user(DEMO_USER, hash_password(password), replace=True)
        click.echo(f"dashboard login / ダッシュボードのログイン: user {DEMO_USER}  password {password}")
        _serve(app, host, port)


@main.command()
@click.argument("ticket_id")
@click.argument("text")
@click.option("--agent", required=True, help="The agent's name, as the customer should see it (e.g. 佐藤).")
@click.option("--key", default=None, help="Dedupe key; the same key never posts twice (default: one per call).")
def reply(ticket_id: str, text: str, agent: str, key: str | None) -> None:
    """Reply publicly to a ticket's post as AGENT, like a public reply in the helpdesk would.

    The reply is signed with the agent's name (YORISOI_REPLY_SIGNATURE) and posted through the
    post's source; with the local helpdesk it is also added to the ticket as a public comment.
    """
    import uuid
    from connector.replies import ReplyFailed, UnknownTicket
    svc = _services(_app())
    dedupe_key = key or f"cli:{uuid.uuid4()}"
    try:
        outcome = svc.reply(ticket_id=ticket_id, agent=agent, text=text, dedupe_key=dedupe_key)
    except UnknownTicket as exc:
        raise click.ClickException(str(exc)) from None
    except ReplyFailed as exc:
        raise click.ClickException(f"the reply was not sent: {exc}" + (" (try again later)" if exc.retryable else ""))
    exchange = outcome.exchange
    if svc.helpdesk.name == "local" and not outcome.duplicate:
        from connector.helpdesks.base import CommentDraft
        from connector.models import TicketRef
        svc.helpdesk.add_comment(TicketRef("local", str(ticket_id)),
                                 CommentDraft(dedupe_key=f"reply:{dedupe_key}", body=exchange["text"], public=True,
                                              author_external_id=agent))
    state = "already sent earlier" if outcome.duplicate else exchange["status"]
    click.echo(f"{state}: {exchange['text']}" + (f"\n{exchange['url']}" if exchange.get("url") else ""))


def _print_poll(report: Any) -> None:
    for unit in report.units:
        when = unit.next_poll_at.strftime("%H:%M:%S UTC") if unit.next_poll_at else "-"
        if not unit.polled:
            click.echo(f"  - {unit.unit}: " + (f"backing off until {when} (last error: {unit.error})"
                                               if unit.backing_off else f"next poll at {when}"))
        elif unit.error:
            click.echo(f"  ! {unit.unit}: {unit.error} (backing off; next try {when})")
        else:
            click.echo(f"  {unit.unit}: fetched {unit.fetched} · new tickets {unit.queued} · follow-ups "
                       f"{unit.follow_ups} · dropped {unit.dropped} · already stored {unit.duplicates}"
                       + (f" · skipped {unit.skipped}" if unit.skipped else "")
                       + (f" · rejected {unit.rejected}" if unit.rejected else "")
                       + (f" ({unit.note})" if unit.note else ""))
    for line in report.usage:
        click.echo(f"  {line}")
    if report.status is not None:
        st = report.status
        click.echo(f"  helpdesk status: {st.changes} changes · {st.matched} of Yorisoi's tickets"
                   + "".join(f"\n  ! {e}" for e in st.errors))
    if report.compliance is not None:
        c = report.compliance
        click.echo(f"  compliance: checked {sum(c.checked.values())} · gone {sum(c.gone.values())} · notes {c.notes_added}"
                   + "".join(f"\n  ! {e}" for e in c.errors))


def _print_status(svc: Any, as_json: bool) -> None:
    """`yorisoi poll --status`: each stream's and each poll unit's health, as stored."""
    from connector.streaming import configured_streams, stream_status
    streams = stream_status(svc.store.sources, [s.name for s in configured_streams(svc)])
    units = svc.store.sources.source_health_rows()
    if as_json:
        click.echo(json.dumps({"streams": streams, "units": units}, ensure_ascii=False, default=str))
        return
    click.echo("streams:" if streams else "streams: none configured (BLUESKY_STREAM / MASTODON_STREAM, or no network)")
    for h in streams:
        status = h.get("status")
        mark = " " if status == "connected" else "!"
        line = f"  {mark} {h['name']}: {status}"
        if status == "connected":
            line += f" since {h.get('connected_since')} · {h.get('events_per_min', 0)} events/min"
        else:
            line += " (its network is polled meanwhile)"
        line += f" · last event {h.get('last_event_at') or 'never'} · reconnects {h.get('reconnects', 0)}"
        if h.get("last_error"):
            line += f"\n      last error {h.get('last_error_at') or ''}: {h['last_error']}"
        click.echo(line)
    click.echo("poll units:" if units else "poll units: none polled yet")
    for u in units:
        when = u["next_poll_at"].strftime("%H:%M:%S UTC") if u.get("next_poll_at") else "-"
        state = f"failing ×{u['failures']}: {u.get('last_error')}" if u.get("failures") else "ok"
        click.echo(f"  {u['unit']}: {state} · last ok {u.get('last_ok_at') or 'never'} · next poll {when}"
                   + (f" ({u['note']})" if u.get("note") else ""))


@main.command()
@click.option("--once", is_flag=True, help="Poll every configured source once, deliver, and exit (for cron).")
@click.option("--status", "show_status", is_flag=True,
              help="Print each stream's and poll unit's health (connected since, events/min, last event, "
                   "reconnects, errors) and exit.")
@click.option("--json", "as_json", is_flag=True, help="With --once or --status: print one JSON object.")
@click.option("--wait", default=60.0, show_default=True,
              help="With --once: seconds to keep retrying deliveries the helpdesk postponed before exiting.")
def poll(once: bool, show_status: bool, as_json: bool, wait: float) -> None:
    """Poll X, Mastodon, Bluesky and RSS/Atom feeds for posts about the watched brands.

    Each network's searches, hashtag timelines and feeds run on their own schedule
    (YORISOI_POLL_INTERVALS) from persisted cursors, so a restart neither skips nor repeats a
    post; a network that fails (429, 5xx) backs off alone. Every post goes through the same
    qualification and analysis as the webhook, and qualifying ones become tickets. Platform
    compliance (deleted posts) runs every 12 hours. Without --once it runs until Ctrl+C,
    with the streams (Bluesky Jetstream, Mastodon hashtag streams) beside the poller: a
    network whose stream is connected is not polled; while it is down, it is. --status shows
    each stream's and unit's health.
    """
    import time
    from connector.poller import Poller
    from connector.streaming import StreamSupervisor
    app = _app()
    svc = _services(app)
    if show_status:
        _print_status(svc, as_json)
        return
    _one_instance(app)
    poller = Poller(svc)
    if not poller.sources:
        raise click.ClickException("no network is configured: set X_BEARER_TOKEN, MASTODON_INSTANCES, "
                                   "BLUESKY_HANDLE/BLUESKY_APP_PASSWORD, or add [[feed]] tables to the watch file")
    svc.store.outbox.release_dead_claims()
    if once:
        report = poller.run_once(ignore_interval=True)
        delivery = svc.pipeline.drain(max_wait=wait)
        if report.compliance is not None:  # notes for tickets created just now
            from connector.compliance import add_pending_notes
            report.compliance.notes_added += add_pending_notes(svc.store, svc.helpdesk, report.compliance)
        if as_json:
            click.echo(json.dumps({
                "units": [u.as_dict() for u in report.units], "usage": report.usage,
                "tickets_created": delivery.created, "comments_added": delivery.commented,
                "compliance": report.compliance.as_dict() if report.compliance else None,
            }, ensure_ascii=False))
            return
        click.echo(f"polled {sum(1 for u in report.units if u.polled)} units · fetched {report.total('fetched')} "
                   f"· tickets created {delivery.created} · follow-up comments {delivery.commented}")
        _print_poll(report)
        return
    svc.start_worker()
    # Streams (Bluesky Jetstream, Mastodon hashtag streams) next to the poller; while one is
    # down its network's units are polled (connector/streaming.py).
    supervisor = StreamSupervisor(svc, wake_delivery=svc.wake_worker)
    supervisor.start()
    click.echo(f"polling {', '.join(s.platform for s in poller.sources)}"
               + (f"; streaming {', '.join(s.name for s in supervisor.streams)}" if supervisor.streams else "")
               + " (Ctrl+C to stop)")
    try:
        while True:
            report = poller.run_once(ignore_interval=False)
            if any(u.fetched or u.error for u in report.units):
                click.echo(time.strftime("%H:%M:%S"))
                _print_poll(report)
                svc.wake_worker()
            time.sleep(min(60.0, max(1.0, poller.seconds_until_next())))
    except KeyboardInterrupt:
        click.echo("stopped")
    finally:
        supervisor.stop()
        svc.close()


@main.command("sync-status")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def sync_status_command(as_json: bool) -> None:
    """Catch up on the helpdesk's ticket statuses now (Zendesk's incremental ticket export,
    Freshdesk's `updated_since` list) from the stored cursor.

    The status webhooks bring changes within seconds; this sweep catches up on calls that were
    missed. `yorisoi poll` runs it every 10 minutes by itself.
    """
    from connector.ticket_status import sync_status
    svc = _services(_app())
    report = sync_status(svc.store, svc.helpdesk)
    if as_json:
        click.echo(json.dumps(report.as_dict(), ensure_ascii=False))
    elif not report.supported:
        click.echo(f"{report.helpdesk}: no status to sync (the {report.helpdesk} helpdesk is Yorisoi's own)")
    else:
        click.echo(f"{report.helpdesk}: {report.pages} page(s) · {report.changes} changed tickets · "
                   f"{report.matched} of them Yorisoi's" + (" · more waiting (run again)" if report.more else ""))
        for error in report.errors:
            click.echo(f"  ! {error}", err=True)
    if report.errors:
        raise SystemExit(1)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--all", "check_all", is_flag=True,
              help="Check every stored post now, even those checked in the last 12 hours (e.g. after a deletion request).")
def compliance(as_json: bool, check_all: bool) -> None:
    """Check stored posts against their network now; purge deleted or protected ones.

    X asks that deleted or protected posts leave our store within 24 hours (Bluesky and
    Mastodon likewise). Gone posts lose their text and (once none of the author's posts is
    live) the author's profile; their ticket gets an internal note saying so, once. `yorisoi
    poll` runs this every 12 hours by itself.
    """
    from datetime import timedelta
    from connector.poller import Poller
    svc = _services(_app())
    report = Poller(svc).run_compliance(timedelta(0) if check_all else timedelta(hours=12))
    if as_json:
        click.echo(json.dumps(report.as_dict(), ensure_ascii=False))
    else:
        for platform, checked in report.checked.items():
            click.echo(f"{platform}: checked {checked} · gone {report.gone.get(platform, 0)}")
        for key in report.purged:
            click.echo(f"  purged {key}")
        click.echo(f"internal notes added: {report.notes_added}")
        click.echo(f"removed from the helpdesk's copy: {len(report.redacted)}")
        if report.not_redacted:
            click.echo(f"not redacted in the helpdesk ({len(report.not_redacted)}; redact these by hand "
                       f"or fix the permission, temporary failures are retried):")
            for row in report.not_redacted:
                click.echo(f"  - {row['post_key']}: {row['state']} after {row['attempts']} attempt(s): {row['detail']}")
        for error in report.errors:
            click.echo(f"  ! {error}", err=True)
    for source in Poller(svc).sources:
        line = source.usage()
        if line and source.platform == "x" and not as_json:
            click.echo(line)


@main.command("setup-sla")
@click.option("--dry-run", is_flag=True, help="Print the policy JSON and change nothing.")
def setup_sla(dry_run: bool) -> None:
    """Create or update the helpdesk's SLA policy for Yorisoi tickets (tagged `yorisoi`).

    First- and next-reply targets per priority come from YORISOI_SLA_MINUTES, so the
    helpdesk's own SLA reports cover social tickets. Running it again changes nothing.
    """
    from connector.helpdesks.base import HelpdeskError, parse_sla_minutes
    svc = _services(_app())
    try:
        minutes = parse_sla_minutes(svc.settings.env.get("YORISOI_SLA_MINUTES"))
        plan = svc.helpdesk.setup_sla(minutes, dry_run=dry_run)
    except (ValueError, HelpdeskError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{svc.helpdesk.name}: {plan.action}")
    click.echo(json.dumps(plan.policy, ensure_ascii=False, indent=2))
    for number, step in enumerate(plan.steps, start=1):
        click.echo(f"{number}. {step}")


@main.command("channel-code")
@click.argument("subdomain")
def channel_code(subdomain: str) -> None:
    """Print the install code a Zendesk admin types into Yorisoi's Channel framework admin UI.

    SUBDOMAIN is the Zendesk account's subdomain (acme for acme.zendesk.com). The code is
    derived from YORISOI_CHANNEL_SECRET: give it only to that account's admin.
    """
    from connector.helpdesks.zendesk.channel import ChannelNotConfigured, ChannelSettings
    from connector.helpdesks.zendesk.channel.tokens import TokenSigner
    from connector.config import Settings
    try:
        settings = ChannelSettings.from_env(Settings.from_env().env)
    except (ChannelNotConfigured, ConfigError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(TokenSigner(settings.secret).install_code(subdomain))
    click.echo(f"manifest: {settings.public_url}/zendesk/manifest.json")
def _read_labelled(path: Path) -> list:
    from connector.analysis.evaluation import LabelledFileError, read_labelled_tsv

    try:
        rows, errors = read_labelled_tsv(path)
    except LabelledFileError as exc:
        raise click.ClickException(str(exc)) from None
    for error in errors[:20]:
        click.echo(f"  ! {path}: {error} (row skipped)", err=True)
    if len(errors) > 20:
        click.echo(f"  … and {len(errors) - 20} more rows skipped", err=True)
    return rows, errors


def _load_model(model_dir: Path | None, *, default: bool = True):
    """The model of `--model DIR`; without it the shipped label model (as the pipeline uses)."""
    from connector.analysis.labeller import default_model, load_model_folder
    from connector.analysis.model import ModelError

    try:
        if model_dir is None:
            return default_model() if default else None
        return load_model_folder(model_dir)
    except ModelError as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@click.argument("file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--posts", "posts_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Normalized posts (JSONL, as for replay) to run through qualification and analysis.")
@click.option("--gold", "gold_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Gold labels for --posts: id, qualify, sentiment, intent, expectation, content, axis, risk.")
@click.option("--watch", "watch_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Watch file for --posts (default: YORISOI_WATCH or the demo's).")
@click.option("--model", "model_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Score this model folder (made by `yorisoi train`, or connector/analysis/default_model).")
@click.option("--lexicon", "lexicon_only", is_flag=True,
              help="Score the lexicon and rules alone (the default for FILE.tsv).")
@click.option("--lang", default=None, help="Language of every row of FILE (ja, en); default: detected per text.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def evaluate(file: Path | None, posts_file: Path | None, gold_file: Path | None, watch_file: Path | None,
             model_dir: Path | None, lexicon_only: bool, lang: str | None, as_json: bool) -> None:
    """Score the analysis on labelled data.

    \b
    FILE.tsv: sentiment only, id<TAB>text<TAB>label per line (negative, neutral, positive;
      extra columns and a header line ignored; bad rows reported on stderr and skipped; a file
      with two classes is scored on those two). Prints accuracy, macro-F1, per-class
      precision/recall/F1, the confusion matrix (gold → predicted) and texts_per_s. General
      text: the lexicon scores it unless --model is given.
    --posts POSTS.jsonl --gold GOLD.tsv [--watch WATCH.toml]: the whole path, as the pipeline
      runs it (qualification, then every label, with the shipped model unless --model or
      --lexicon), per label with its confusion matrix. An empty gold cell is left out of that
      label's score.
    """
    if lexicon_only and model_dir is not None:
        raise click.UsageError("--lexicon and --model exclude each other")
    # Brand posts (--posts) go through the shipped label model, as in the pipeline. A FILE.tsv is
    # general labelled text (the public data sets): the lexicon scores it unless --model is
    # given — the label model learnt sentiment *about a brand* and reads general text worse
    # (README, "Analysis": both measured).
    model = None if lexicon_only else _load_model(model_dir, default=posts_file is not None)
    if posts_file is not None or gold_file is not None:
        if file is not None or posts_file is None or gold_file is None:
            raise click.UsageError("give FILE.tsv, or --posts and --gold together")
        from connector.config import Settings
        from connector.gold import GoldFileError, evaluate_path, format_text

        watch = watch_file or Settings.from_env().watch_path
        try:
            result = evaluate_path(posts_file, gold_file, watch, model)
        except GoldFileError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(json.dumps(result, ensure_ascii=False) if as_json else format_text(result))
        return
    if file is None:
        raise click.UsageError("give FILE.tsv, or --posts and --gold")
    from connector.analysis.evaluation import evaluate_rows

    rows, errors = _read_labelled(file)
    result = evaluate_rows(rows, model, lang=lang)
    result["rows_skipped"] = len(errors)
    if as_json:
        keys = ("n", "accuracy", "macro_f1", "per_class", "confusion", "texts_per_s")
        ordered = {k: result[k] for k in keys} | {k: v for k, v in result.items() if k not in keys}
        click.echo(json.dumps(ordered, ensure_ascii=False))
        return
    click.echo(f"{file}: n {result['n']} · accuracy {result['accuracy']:.4f} · macro-F1 {result['macro_f1']:.4f} "
               f"· {result['texts_per_s']} texts/s · {result['analyser']}")
    for label, m in result["per_class"].items():
        click.echo(f"  {label:<9} precision {m['precision']:.4f}  recall {m['recall']:.4f}  f1 {m['f1']:.4f}  "
                   f"(n {m['support']})")
    shown = list(next(iter(result["confusion"].values())))
    click.echo("  confusion (rows gold, columns predicted): " + " ".join(shown))
    for gold, row in result["confusion"].items():
        click.echo(f"  {gold:<9} " + " ".join(f"{row[p]:>6}" for p in shown))


@main.command()
@click.argument("file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--corpus", "corpus_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Train the label model (all five labels) on a corpus folder: posts.jsonl + labels.tsv.")
@click.option("--from-corrections", is_flag=True,
              help="Fine-tune the label model on the team's corpus plus the agents' corrections in the database.")
@click.option("--weight", default=3.0, show_default=True,
              help="With --from-corrections: how many corpus rows one correction counts as.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder to write the model to (model.json + weights.npz); set YORISOI_MODEL_DIR to it.")
@click.option("--lang", default=None, help="Language of every row of FILE (ja, en); default: detected per text.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object describing the model.")
def train(file: Path | None, corpus_dir: Path | None, from_corrections: bool, weight: float, out_dir: Path,
          lang: str | None, as_json: bool) -> None:
    """Train a model: the label model from a corpus or from corrections, or sentiment from a TSV file.

    \b
    --corpus DIR: the label model on DIR/posts.jsonl + DIR/labels.tsv (qualifying posts; the
      shipped model is `yorisoi train --corpus corpus --out connector/analysis/default_model`).
      Deterministic: the same corpus gives the same bytes.
    --from-corrections: the team's corpus (or --corpus DIR) plus every correction agents made in
      the sidebar (each counted --weight times), judged before/after on a held-back fifth of the
      corrected posts; a model that is worse there than the current one is not saved (exit 1).
    FILE.tsv: a sentiment-only model from id<TAB>text<TAB>label rows (negative, neutral,
      positive; bad rows reported and skipped).
    """
    from connector.analysis.model import ModelError, SentimentModel
    from connector.analysis.training import CorpusError

    if (file is not None) + (corpus_dir is not None or from_corrections) != 1:
        raise click.UsageError("give FILE, or --corpus DIR and/or --from-corrections")
    try:
        if from_corrections:
            summary = _fine_tune(out_dir, weight, corpus_dir)
        elif corpus_dir is not None:
            from connector.analysis.training import train_on_corpus

            model = train_on_corpus(corpus_dir)
            model.save(out_dir)
            summary = {"out": str(out_dir), "name": model.name, **model.meta}
        else:
            from connector.analysis import prepare

            rows, errors = _read_labelled(file)
            items = [prepare(row.text, lang) for row in rows]
            sentiment = SentimentModel.fit(items, [row.label for row in rows], source=str(file))
            sentiment.save(out_dir)
            summary = {"out": str(out_dir), "name": sentiment.name, "classes": list(sentiment.classes),
                       "training_size": len(items), "rows_skipped": len(errors), **sentiment.meta}
    except (ModelError, CorpusError) as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(summary, ensure_ascii=False))
        if summary.get("saved") is False:
            sys.exit(1)
        return
    if "before" in summary:
        click.echo(f"held-back corrections: {summary['held_back']} posts; accuracy before {summary['before']['all']:.3f} "
                   f"→ after {summary['after']['all']:.3f}")
        for label in sorted(k for k in summary["after"] if k not in ("all", "n")):
            click.echo(f"  {label:<20} {summary['before'].get(label, 0):.3f} → {summary['after'][label]:.3f}")
        if not summary["saved"]:
            click.echo(f"not saved: the new model is worse on the held-back corrections than the current one "
                       f"(nothing written to {out_dir})", err=True)
            sys.exit(1)
    counts = summary.get("class_counts", {})
    shown = "; ".join(f"{label}: " + ", ".join(f"{k} {v}" for k, v in c.items()) for label, c in counts.items()) \
        if counts and isinstance(next(iter(counts.values())), dict) else ", ".join(f"{k} {v}" for k, v in counts.items())
    skipped = summary.get("rows_skipped")
    click.echo(f"model {summary['name']} written to {out_dir}: {summary.get('training_size')} examples ({shown})"
               + (f", {skipped} rows skipped" if skipped else ""))


def _fine_tune(out_dir: Path, weight: float, corpus: Path | None) -> dict:
    """`train --from-corrections`: the corrections of every model label, latest per post and label."""
    from connector.analysis.labeller import LABELS, LabelModel
    from connector.analysis.training import CorpusError, corrections_as_examples, default_corpus, fine_tune

    corpus = corpus or default_corpus()
    if corpus is None:
        raise CorpusError("the team's corpus is not installed with this package (corpus/labels.tsv)")
    svc = _services(_app())
    rows = [(key, label, value, text, post_lang)
            for label in LABELS for key, text, value, post_lang in svc.store.corrections.corrected_examples(label)]
    current = svc.pipeline.model if isinstance(svc.pipeline.model, LabelModel) else None
    result = fine_tune(corpus, corrections_as_examples(rows), current, weight=weight)
    summary = {"out": str(out_dir), "name": result.model.name, "before": result.before, "after": result.after,
               "trained_on_corrections": result.trained_on, "held_back": result.held_back,
               "saved": result.better, **result.model.meta}
    if result.better:
        result.model.save(out_dir)
    return summary


@main.group()
def token() -> None:
    """Per-agent API tokens for the sidebar browser extension (/api/v1/).

    Each agent gets their own token: the connector then knows who checked a draft or corrected
    a label, and a lost laptop means revoking one token. Tokens are stored hashed (SHA-256).
    """


@token.command("create")
@click.option("--agent", required=True, help="The agent's name as customers see it (e.g. 佐藤).")
def token_create(agent: str) -> None:
    """Create a token for AGENT and print it once (it cannot be shown again)."""
    from connector.agents import create_token
    try:
        token_id, secret = create_token(_services(_app()).store, agent)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"token #{token_id} for {agent.strip()} — 一度だけ表示します / shown once, paste it into the extension's options:")
    click.echo(secret)


@token.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
def token_list(as_json: bool) -> None:
    """List tokens (id, agent, created, last used, revoked); never the tokens themselves."""
    rows = _services(_app()).store.accounts.list_agent_tokens()
    records = [{"id": r["id"], "agent": r["agent"], "created_at": r["created_at"].isoformat(),
                "last_used_at": r["last_used_at"].isoformat() if r["last_used_at"] else None,
                "revoked_at": r["revoked_at"].isoformat() if r["revoked_at"] else None} for r in rows]
    if as_json:
        click.echo(json.dumps(records, ensure_ascii=False, indent=1))
        return
    if not records:
        click.echo("no tokens yet (yorisoi token create --agent NAME)")
    for rec in records:
        state = f"revoked {rec['revoked_at'][:16]}" if rec["revoked_at"] else "active"
        used = rec["last_used_at"][:16] if rec["last_used_at"] else "never"
        click.echo(f"#{rec['id']:>4}  {rec['agent']}  created {rec['created_at'][:16]}  last used {used}  {state}")


@token.command("revoke")
@click.argument("token_id", type=int)
def token_revoke(token_id: int) -> None:
    """Revoke token TOKEN_ID (see `yorisoi token list`); the sidebar using it gets 401 at once."""
    if not _services(_app()).store.accounts.revoke_agent_token(token_id):
        raise click.ClickException(f"no active token #{token_id} (see yorisoi token list)")
    click.echo(f"token #{token_id} revoked")


@main.command("check-config", epilog=_CONFIG_WHERE)
def check_config() -> None:
    """Validate the settings and the watch file, and show what will be watched.

    Settings come from environment variables: Yorisoi's own (YORISOI_*), each network's
    (X_*, MASTODON_*, BLUESKY_*) and each helpdesk's (ZENDESK_*, FRESHDESK_*).
    """
    svc = _services(_app())
    click.echo(f"watch file: {svc.watch.source}")
    for brand in svc.watch.brands:
        click.echo(f"  {brand.name}: {len(brand.keywords)} keywords, {len(brand.hashtags)} hashtags, "
                   f"{len(brand.mentions)} mentions, excluding {len(brand.exclude_accounts)} accounts "
                   f"and {len(brand.exclude_words)} words; languages {', '.join(brand.languages) or 'any'}")
    click.echo(f"helpdesk: {svc.helpdesk.name}")
    click.echo(f"database: {svc.store.engine.url.render_as_string(hide_password=True)}")
    click.echo(f"source webhook: {'enabled' if svc.settings.webhook_secret else 'disabled (YORISOI_WEBHOOK_SECRET unset)'}")


@main.command()
def doctor() -> None:
    """Check the live configuration end to end (read-only), one line per check.

    Helpdesk credentials and plan features (SLA API, custom fields named in ZENDESK_FIELDS /
    FRESHDESK_FIELDS), each configured network's token (and which field naming X answers in),
    and YORISOI_PUBLIC_URL's /healthz. Exit code 1 when any check FAILs (warnings do not).
    """
    from connector import doctor as doctor_mod
    checks = doctor_mod.run()
    for check in checks:
        click.echo(check.line())
    failed = sum(c.status == doctor_mod.FAIL for c in checks)
    warned = sum(c.status == doctor_mod.WARN for c in checks)
    click.echo(f"{len(checks)} 件確認、失敗 {failed}、警告 {warned} / {len(checks)} checks, {failed} failed, {warned} warnings")
    if failed:
        sys.exit(1)


@main.command()
@click.option("--since", default="7d", show_default=True,
              help="Days to cover, ending today (Japan time): 7d, 4w, 3m, or a first day YYYY-MM-DD.")
@click.option("--until", "until", default=None, help="Last day (YYYY-MM-DD, inclusive; default today).")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "csv", "xlsx"]), default="text", show_default=True,
              help="xlsx: only with --weekly (an Excel workbook, one sheet per table; needs --out).")
@click.option("--weekly", is_flag=True, help="The weekly report: the 7 days ending --until (default today, "
              "Japan time) against the 7 before, in Japanese unless --lang en.")
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to this file instead of the terminal.")
@click.option("--brand", multiple=True, help="Only this brand (repeatable).")
@click.option("--source", multiple=True, help="Only this network, e.g. x, mastodon (repeatable).")
@click.option("--label", "labels", multiple=True, metavar="NAME=VALUE",
              help="Only posts with this label, e.g. sentiment=negative, intent=complaint (repeatable).")
@click.option("--lang", type=click.Choice(["ja", "en"]), default=None,
              help="Language of headings and label names (default: ja for --weekly, else en).")
@click.option("--rebuild", is_flag=True, help="First recount the report tables from the stored posts "
              "(and find complaint topics of posts stored before topics existed; slow on big databases).")
def report(since: str, until: str | None, fmt: str, weekly: bool, out_file: Path | None, brand: tuple[str, ...],
           source: tuple[str, ...], labels: tuple[str, ...], lang: str | None, rebuild: bool) -> None:
    """Print the dashboard's figures for scripts and e-mail: volumes per day by label and
    source, top complaint topics, open tickets by public risk, response times from the post
    (p50/p90/p99 by priority), qualification reasons and the outbox.

    The figures are computed by the same code as the dashboard pages, with the same filters.
    csv prints every table one after another, each headed by a `# name` line.
    """
    from connector import reports
    if weekly:
        _weekly_report(until, fmt, out_file, lang or "ja")
        return
    if fmt == "xlsx":
        raise click.UsageError("--format xlsx is for --weekly")
    lang = lang or "en"
    svc = _services(_app())
    if rebuild:
        from connector.topics import watch_terms, topics_of_text, is_complaint
        terms = watch_terms(svc.watch)

        def topics_of(row: dict[str, Any]) -> list[str]:
            if not (row.get("sentiment") == "negative" or row.get("intent") == "complaint"):
                return []
            return topics_of_text(row["text"], exclude=terms, lang=row.get("lang"))
        click.echo(f"recounted {svc.store.reports.rebuild_reports(topics_of)} posts", err=True)
    args: dict[str, list[str]] = {"brand": list(brand), "source": list(source)}
    try:
        args["from"] = [reports.parse_since(since).isoformat()]
        if until:
            args["to"] = [until]
        for item in labels:
            name, sep, value = item.partition("=")
            if not sep:
                raise reports.FilterError(f"--label {item!r}: expected NAME=VALUE, e.g. sentiment=negative")
            args.setdefault(name.strip(), []).append(value.strip())
        unknown = set(args) - {"brand", "source", "from", "to", *reports.LABEL_COLUMNS}
        if unknown:
            raise reports.FilterError(f"--label {sorted(unknown)[0]}=…: not a label; use one of "
                                      f"{', '.join(reports.LABEL_COLUMNS)}")
        f = reports.parse_filter(args)
    except reports.FilterError as exc:
        raise click.ClickException(str(exc)) from None
    tables = reports.full_report(svc.store, f)
    if fmt == "json":
        click.echo(json.dumps({"filter": {"since": f.since, "until": f.until, "brands": list(f.brands),
                                          "sources": list(f.platforms), "labels": dict(f.labels)},
                               "tables": [t.as_json() for t in tables]}, ensure_ascii=False, indent=1))
    elif fmt == "csv":
        for table in tables:
            click.echo(f"# {table.name}")
            click.echo(reports.to_csv(table, lang).rstrip("\r\n").replace("\r\n", "\n"))
            click.echo("")
    else:
        click.echo(f"Yorisoi report · {reports.describe_filter(f)}\n")
        for table in tables:
            click.echo(reports.to_text(table, lang))
            click.echo("")


def _weekly_report(until: str | None, fmt: str, out_file: Path | None, lang: str) -> None:
    from datetime import date
    from connector import weekly
    try:
        last = date.fromisoformat(until) if until else None
    except ValueError:
        raise click.ClickException(f"--until {until!r}: expected a date like 2026-11-20 (YYYY-MM-DD)") from None
    svc = _services(_app())
    report = weekly.build(svc.store, svc.settings.env, last)
    if fmt == "xlsx":
        if out_file is None:
            raise click.UsageError("--format xlsx needs --out FILE.xlsx")
        out_file.write_bytes(weekly.to_xlsx(report, lang))
    else:
        text = {"text": lambda: weekly.to_text(report, lang),
                "json": lambda: json.dumps(weekly.to_json(report, lang), ensure_ascii=False, indent=1),
                "csv": lambda: ("\ufeff" if out_file else "") + weekly.to_csv(report, lang)}[fmt]()
        if out_file is None:
            click.echo(text.replace("\r\n", "\n"))
            return
        out_file.write_text(text, encoding="utf-8", newline="")
    click.echo(f"{out_file}: {report.title(lang)}", err=True)


@main.group()
def user() -> None:
    """Dashboard accounts for supervisors (the dashboard needs a login)."""


@user.command("create")
@click.argument("name")
@click.option("--generate", is_flag=True, help="Generate a random password and print it once.")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin (for scripts).")
@click.option("--reset", is_flag=True, help="Set a new password for an existing account.")
def user_create(name: str, generate: bool, password_stdin: bool, reset: bool) -> None:
    """Create a supervisor account NAME; prompts for the password unless told otherwise.

    Passwords are stored as salted scrypt hashes; a generated one is printed once, here only.
    """
    from connector.web.auth import check_password_strength, generate_password, hash_password
    name = name.strip()
    if not name or len(name) > 100:
        raise click.ClickException("NAME must be 1 to 100 characters")
    if generate:
        password = generate_password()
    elif password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("password / パスワード", hide_input=True, confirmation_prompt=True)
    problem = check_password_strength(password)
    if problem:
        raise click.ClickException(problem)
    svc = _services(_app())
    if not svc.store.accounts.create_user(name, hash_password(password), replace=reset):
        raise click.ClickException(f"account {name!r} exists already (use --reset to set a new password)")
    click.echo(f"{'password reset for' if reset else 'created'} {name}" +
               (f"  password {password}" if generate else ""))


@user.command("delete")
@click.argument("name")
def user_delete(name: str) -> None:
    """Delete the supervisor account NAME; its sessions end at their next request."""
    if not _services(_app()).store.accounts.delete_user(name.strip()):
        raise click.ClickException(f"no account {name!r}")
    click.echo(f"deleted {name.strip()}")


@user.command("list")
def user_list() -> None:
    """List the supervisor accounts and when they last signed in."""
    for row in _services(_app()).store.accounts.list_users():
        last = row["last_login_at"].isoformat(timespec="seconds") if row["last_login_at"] else "never"
        click.echo(f"{row['name']}\tcreated {row['created_at'].isoformat(timespec='seconds')}\tlast sign-in {last}")


def register(app: Flask) -> None:
    """Make every `yorisoi` command available as `flask --app connector <command>` too."""
    for command in main.commands.values():
        app.cli.add_command(command)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
