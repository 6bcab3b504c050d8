"""`yorisoi` commands. Thin: each one calls the same functions the web app uses.

They are registered on the Flask app (`flask --app connector replay …` works too) and exposed
as the `yorisoi` console script, which builds the app only when a command runs.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from flask import Flask, current_app

from connector.config import DEMO_FEED, ENV_VARS, ConfigError
from connector.pipeline import replay_summary
from connector.watch import WatchConfigError

_EPILOG = "Configuration (environment variables):\n\n" + "\n\n".join(
    f"{name} (default: {default}) — {meaning}" for name, default, meaning in ENV_VARS)


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


@click.group(epilog=_EPILOG, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="yorisoi")
def main() -> None:
    """Yorisoi (寄り添い): public posts about your brand become tickets in your helpdesk.

    Watches posts, keeps the ones that qualify, analyses them in Japanese and English, and
    delivers each one as exactly one ticket through a crash-safe outbox.
    """


def _replay_file(app: Flask, path: Path, source: str, wait: float) -> dict[str, Any]:
    svc = _services(app)
    svc.store.release_dead_claims()
    with path.open(encoding="utf-8", errors="replace") as lines:
        read, outcomes = svc.pipeline.ingest_lines(lines, source=source)
    delivery = svc.pipeline.drain(max_wait=wait)
    counts = svc.store.outbox_counts()
    return replay_summary(read, outcomes, delivery, pending=counts.get("pending", 0) + counts.get("sending", 0))


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
    summary = _replay_file(_app(), file, "replay", wait)
    if as_json:
        click.echo(json.dumps(summary, ensure_ascii=False))
    else:
        _print_summary(summary)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.option("--limit", type=int, default=None, help="Only the newest N tickets.")
def tickets(as_json: bool, limit: int | None) -> None:
    """List the tickets created in the configured helpdesk, newest first."""
    svc = _services(_app())
    rows = svc.store.list_tickets(helpdesk=svc.helpdesk.name, limit=limit)
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
    svc.store.release_dead_claims()
    if retry_failed:
        click.echo(f"requeued {svc.store.retry_failed()} failed deliveries")
    report = svc.pipeline.drain(max_wait=wait)
    click.echo(f"tickets created {report.created} · comments {report.commented} · retrying {report.retried} "
               f"· failed {report.failed}" + (f" · stopped: {report.stopped}" if report.stopped else ""))


def _serve(app: Flask, host: str, port: int) -> None:
    from waitress import serve as waitress_serve
    svc = _services(app)
    svc.start_worker()
    click.echo(f"Yorisoi is listening on http://{host}:{port}/  (helpdesk: {svc.helpdesk.name}; Ctrl+C to stop)")
    try:
        waitress_serve(app, host=host, port=port, threads=8, ident="yorisoi")
    finally:
        svc.close()


@main.command()
@click.option("--host", default=None, help="Address to listen on (default: YORISOI_HOST).")
@click.option("--port", type=int, default=None, help="Port (default: YORISOI_PORT).")
def serve(host: str | None, port: int | None) -> None:
    """Run the connector: web app, inbound webhooks and the delivery worker."""
    app = _app()
    settings = _services(app).settings
    _serve(app, host or settings.host, port or settings.port)


@main.command()
@click.option("--host", default=None, help="Address to listen on (default: YORISOI_HOST).")
@click.option("--port", type=int, default=None, help="Port (default: YORISOI_PORT).")
@click.option("--no-serve", is_flag=True, help="Load the demo feed and exit without serving.")
def demo(host: str | None, port: int | None, no_serve: bool) -> None:
    """Load the bundled demo feed (a fictional brand, ソラモバイル) and serve the dashboard.

    Uses the embedded defaults: SQLite in ./data, the built-in `local` helpdesk and the
    bundled watch file. Loading twice is harmless: posts already stored are skipped.
    """
    app = _app()
    summary = _replay_file(app, DEMO_FEED, "demo", wait=30.0)
    _print_summary(summary)
    if not no_serve:
        settings = _services(app).settings
        _serve(app, host or settings.host, port or settings.port)


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


def _load_model(model_dir: Path | None):
    if model_dir is None:
        return None
    from connector.analysis.model import ModelError, SentimentModel
    try:
        return SentimentModel.load(model_dir)
    except ModelError as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--model", "model_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Score a model made by `yorisoi train` instead of the built-in lexicon.")
@click.option("--lang", default=None, help="Language of every row (ja, en); default: detected per text.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def evaluate(file: Path, model_dir: Path | None, lang: str | None, as_json: bool) -> None:
    """Score sentiment on a labelled TSV file: id<TAB>text<TAB>label per line.

    Labels are negative, neutral or positive; extra columns and a header line (id, text, label)
    are ignored; bad rows are reported on stderr and skipped. A file whose labels have only two
    classes is scored on those two (a neutral prediction is then an error). Prints accuracy,
    macro-F1, per-class precision/recall/F1, the confusion matrix (gold → predicted) and
    texts_per_s (sentiment only, this process, after a warm-up).
    """
    from connector.analysis.evaluation import evaluate_rows

    rows, errors = _read_labelled(file)
    result = evaluate_rows(rows, _load_model(model_dir), lang=lang)
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
@click.option("--from-corrections", is_flag=True,
              help="Train on the sentiment corrections agents made (texts from the database).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder to write the model to (model.json + weights.npz); set YORISOI_MODEL_DIR to it.")
@click.option("--lang", default=None, help="Language of every row of FILE (ja, en); default: detected per text.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object describing the model.")
def train(file: Path | None, from_corrections: bool, out_dir: Path, lang: str | None, as_json: bool) -> None:
    """Train a sentiment model from a labelled TSV file, or from agents' corrections.

    FILE has id<TAB>text<TAB>label per line (label negative, neutral or positive; extra columns
    ignored; bad rows reported and skipped). Needs at least two classes.
    """
    from connector.analysis import prepare
    from connector.analysis.model import ModelError, SentimentModel

    if (file is None) == (not from_corrections):
        raise click.UsageError("give either FILE or --from-corrections (one of them)")
    skipped = 0
    if file is not None:
        rows, errors = _read_labelled(file)
        skipped = len(errors)
        texts = [(row.text, lang) for row in rows]
        labels = [row.label for row in rows]
        source = str(file)
    else:
        examples = _services(_app()).store.corrected_examples("sentiment")
        if not examples:
            raise click.ClickException("no sentiment corrections in the database yet")
        texts = [(text, post_lang) for _key, text, _value, post_lang in examples]
        labels = [value for _key, _text, value, _lang in examples]
        source = "corrections"
    items = [prepare(text, language) for text, language in texts]
    try:
        model = SentimentModel.fit(items, labels, source=source)
    except ModelError as exc:
        raise click.ClickException(str(exc)) from None
    model.save(out_dir)
    summary = {"out": str(out_dir), "name": model.name, "classes": list(model.classes),
               "training_size": len(items), "rows_skipped": skipped, **model.meta}
    if as_json:
        click.echo(json.dumps(summary, ensure_ascii=False))
    else:
        counts = ", ".join(f"{k} {v}" for k, v in model.meta["class_counts"].items())
        click.echo(f"model {model.name} written to {out_dir}: {len(items)} examples ({counts})"
                   + (f", {skipped} rows skipped" if skipped else ""))


@main.command("check-config")
def check_config() -> None:
    """Validate the settings and the watch file, and show what will be watched."""
    svc = _services(_app())
    click.echo(f"watch file: {svc.watch.source}")
    for brand in svc.watch.brands:
        click.echo(f"  {brand.name}: {len(brand.keywords)} keywords, {len(brand.hashtags)} hashtags, "
                   f"{len(brand.mentions)} mentions, excluding {len(brand.exclude_accounts)} accounts "
                   f"and {len(brand.exclude_words)} words; languages {', '.join(brand.languages) or 'any'}")
    click.echo(f"helpdesk: {svc.helpdesk.name}")
    click.echo(f"database: {svc.store.engine.url.render_as_string(hide_password=True)}")
    click.echo(f"source webhook: {'enabled' if svc.settings.webhook_secret else 'disabled (YORISOI_WEBHOOK_SECRET unset)'}")


def register(app: Flask) -> None:
    """Make every `yorisoi` command available as `flask --app connector <command>` too."""
    for command in main.commands.values():
        app.cli.add_command(command)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
