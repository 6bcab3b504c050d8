"""`yorisoi report`: the dashboard's figures for scripts and e-mail."""
from __future__ import annotations

import json
from typing import Any

import click

from connector.cli import _app, _services, main


@main.command()
@click.option("--since", default="7d", show_default=True,
              help="Days to cover, ending today (Japan time): 7d, 4w, 3m, or a first day YYYY-MM-DD.")
@click.option("--until", "until", default=None, help="Last day (YYYY-MM-DD, inclusive; default today).")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "csv"]), default="text", show_default=True)
@click.option("--brand", multiple=True, help="Only this brand (repeatable).")
@click.option("--source", multiple=True, help="Only this network, e.g. x, mastodon (repeatable).")
@click.option("--label", "labels", multiple=True, metavar="NAME=VALUE",
              help="Only posts with this label, e.g. sentiment=negative, intent=complaint (repeatable).")
@click.option("--lang", type=click.Choice(["ja", "en"]), default="en", show_default=True,
              help="Language of headings and label names (text and csv).")
@click.option("--rebuild", is_flag=True, help="First recount the report tables from the stored posts "
              "(and find complaint topics of posts stored before topics existed; slow on big databases).")
def report(since: str, until: str | None, fmt: str, brand: tuple[str, ...], source: tuple[str, ...],
           labels: tuple[str, ...], lang: str, rebuild: bool) -> None:
    """Print the dashboard's figures for scripts and e-mail: volumes per day by label and
    source, top complaint topics, open tickets by public risk, response times from the post
    (p50/p90/p99 by priority), qualification reasons and the outbox.

    The figures are computed by the same code as the dashboard pages, with the same filters.
    csv prints every table one after another, each headed by a `# name` line.
    """
    from connector import reports
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
