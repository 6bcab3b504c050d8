"""`yorisoi` commands of the analysis: evaluate, train."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from connector.cli import _app, _services, main


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
