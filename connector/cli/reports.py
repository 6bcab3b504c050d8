"""`yorisoi` commands of the reports: report (and --weekly)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from connector.cli import _app, _services, main


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
@click.option("--email", is_flag=True, help="With --weekly: e-mail the report (text, HTML and the .xlsx attached) "
              "through YORISOI_SMTP_HOST to YORISOI_REPORT_MAIL_TO, for cron; the week ends yesterday unless "
              "--until. A week already sent is not sent again (exit 0).")
@click.option("--force", is_flag=True, help="With --email: send even if this week was sent already.")
@click.option("--rebuild", is_flag=True, help="First recount the report tables from the stored posts "
              "(and find complaint topics of posts stored before topics existed; slow on big databases).")
def report(since: str, until: str | None, fmt: str, weekly: bool, out_file: Path | None, brand: tuple[str, ...],
           source: tuple[str, ...], labels: tuple[str, ...], lang: str | None, email: bool, force: bool,
           rebuild: bool) -> None:
    """Print the dashboard's figures for scripts and e-mail: volumes per day by label and
    source, top complaint topics, open tickets by public risk, response times from the post
    (p50/p90/p99 by priority), qualification reasons and the outbox.

    The figures are computed by the same code as the dashboard pages, with the same filters.
    csv prints every table one after another, each headed by a `# name` line.
    """
    from connector import reports
    if email and not weekly:
        raise click.UsageError("--email is for --weekly")
    if email:
        _weekly_email(until, force)
        return
    if weekly:
        _weekly_report(until, fmt, out_file, lang or "ja")
        return
    if fmt == "xlsx":
        raise click.UsageError("--format xlsx is for --weekly")
    lang = lang or "en"
    svc = _services(_app())
    if rebuild:
        from connector.topics import topics_of_text, watch_terms
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


def _weekly_email(until: str | None, force: bool) -> None:
    from datetime import date, timedelta

    from connector import weekly_mail
    from connector.config import ConfigError
    from connector.report_time import today
    try:
        last = date.fromisoformat(until) if until else today() - timedelta(days=1)
    except ValueError:
        raise click.ClickException(f"--until {until!r}: expected a date like 2026-11-20 (YYYY-MM-DD)") from None
    svc = _services(_app())
    try:
        settings = weekly_mail.MailSettings.from_env(svc.settings.env)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if settings is None:
        raise click.ClickException("メールの設定がありません / no mail server: set YORISOI_SMTP_HOST, "
                                   "YORISOI_REPORT_MAIL_FROM and YORISOI_REPORT_MAIL_TO")
    outcome = weekly_mail.send_weekly(svc.store, svc.settings.env, settings, last, force=force)
    if outcome.status in ("failed", "busy"):
        raise click.ClickException(outcome.line())
    click.echo(outcome.line())


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
