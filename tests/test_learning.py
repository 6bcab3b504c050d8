"""Evaluation, training, the model folder, YORISOI_MODEL_DIR and agents' corrections.

The labelled files in fixtures/ (sentiment_*.tsv) were written by the team for these tests.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import FIXTURES, post_dict
from corpus_support import small_corpus
from sqlalchemy import text as sql

from connector.analysis import prepare, sentiment_of
from connector.analysis.evaluation import parse_labelled_lines, read_labelled_tsv, score
from connector.analysis.labeller import load_model_folder
from connector.analysis.model import ModelError, SentimentModel
from connector.cli import main
from connector.config import ConfigError
from connector.db.schema import SCHEMA_VERSION
from connector.store import Store

JA = FIXTURES / "sentiment_ja.tsv"
EN2 = FIXTURES / "sentiment_en_2class.tsv"
BAD = FIXTURES / "sentiment_bad.tsv"
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def run(*args: str, env: dict[str, str] | None = None):
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    return result


@pytest.fixture(scope="module")
def ja_model_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("model")
    result = run("train", str(JA), "--out", str(out))
    assert result.exit_code == 0, result.output
    return out


# ── metrics ───────────────────────────────────────────────────────────────────────────────

def test_metrics_match_a_hand_computed_example():
    gold = ["negative", "negative", "negative", "neutral", "neutral", "positive", "positive", "positive"]
    pred = ["negative", "negative", "neutral", "neutral", "positive", "positive", "positive", "negative"]
    result = score(gold, pred)
    # negative: tp 2, predicted 3, actual 3 → P 2/3, R 2/3, F1 2/3
    # neutral:  tp 1, predicted 2, actual 2 → P 1/2, R 1/2, F1 1/2
    # positive: tp 2, predicted 3, actual 3 → P 2/3, R 2/3, F1 2/3
    assert result["n"] == 8
    assert result["accuracy"] == pytest.approx(5 / 8, abs=1e-4)
    assert result["per_class"]["negative"] == {"precision": 0.6667, "recall": 0.6667, "f1": 0.6667, "support": 3}
    assert result["per_class"]["neutral"]["f1"] == 0.5
    assert result["macro_f1"] == pytest.approx((2 / 3 + 0.5 + 2 / 3) / 3, abs=1e-4)
    assert result["confusion"]["positive"] == {"negative": 1, "neutral": 0, "positive": 2}


def test_two_class_gold_is_scored_on_those_two_and_neutral_is_an_error():
    gold = ["negative", "negative", "positive", "positive"]
    pred = ["negative", "neutral", "positive", "positive"]
    result = score(gold, pred)
    assert result["classes"] == ["negative", "positive"]
    assert set(result["per_class"]) == {"negative", "positive"}
    # negative: P 1/1, R 1/2 → F1 2/3; positive: P 2/2, R 2/2 → 1
    assert result["per_class"]["negative"]["precision"] == 1.0
    assert result["per_class"]["negative"]["recall"] == 0.5
    assert result["macro_f1"] == pytest.approx((2 / 3 + 1) / 2, abs=1e-4)
    assert result["accuracy"] == 0.75
    assert result["confusion"]["negative"] == {"negative": 1, "neutral": 1, "positive": 0}


def test_zero_divisions_count_as_zero():
    result = score(["negative", "positive"], ["positive", "positive"])
    assert result["per_class"]["negative"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}


# ── the labelled file ─────────────────────────────────────────────────────────────────────

def test_bad_rows_are_reported_with_their_line_and_skipped():
    rows, errors = read_labelled_tsv(BAD)
    assert [(r.id, r.label) for r in rows] == [("b01", "positive"), ("b05", "neutral"), ("b06", "negative")]
    messages = [str(e) for e in errors]
    assert messages[0].startswith("line 3: expected id<TAB>text<TAB>label, found 2 column(s)")
    assert messages[1] == "line 4: b03: empty text"
    assert messages[2].startswith("line 5: b04: label 'angry' is not one of")
    assert messages[3] == "line 6: b01: id already used on an earlier line"


def test_header_is_optional_and_extra_columns_are_ignored():
    rows, errors = parse_labelled_lines(["a\tよい\tpositive\textra\tmore\n", "b\t悪い\tnegative\n"])
    assert not errors and [r.id for r in rows] == ["a", "b"]


# ── yorisoi evaluate ──────────────────────────────────────────────────────────────────────

def test_evaluate_prints_the_issue_json_shape():
    result = run("evaluate", str(JA), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert list(data)[:6] == ["n", "accuracy", "macro_f1", "per_class", "confusion", "texts_per_s"]
    assert data["n"] == 30
    assert set(data["per_class"]) == {"negative", "neutral", "positive"}
    assert set(data["per_class"]["negative"]) >= {"precision", "recall", "f1"}
    assert sum(sum(row.values()) for row in data["confusion"].values()) == 30
    assert data["texts_per_s"] > 0
    assert data["macro_f1"] >= 0.6  # the lexicon on plain posts the team wrote


def test_evaluate_two_class_file():
    data = json.loads(run("evaluate", str(EN2), "--json").stdout)
    assert data["classes"] == ["negative", "positive"]
    assert set(data["per_class"]) == {"negative", "positive"}
    assert data["macro_f1"] >= 0.8


def test_evaluate_reports_bad_rows_on_stderr():
    result = run("evaluate", str(BAD), "--json")
    assert result.exit_code == 0
    assert "line 5: b04: label 'angry'" in result.stderr
    assert json.loads(result.stdout)["rows_skipped"] == 4


def test_evaluate_an_unusable_file_fails_clearly(tmp_path):
    empty = tmp_path / "empty.tsv"
    empty.write_text("id\ttext\tlabel\nx\tonly text\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["evaluate", str(empty)])
    assert result.exit_code != 0
    assert "no usable row" in result.output


# ── yorisoi train and the model folder ────────────────────────────────────────────────────

def test_train_writes_model_json_and_plain_arrays(ja_model_dir):
    info = json.loads((ja_model_dir / "model.json").read_text(encoding="utf-8"))
    assert info["format"] == 1 and info["name"] == "lr-charngram-1"
    assert info["classes"] == ["negative", "neutral", "positive"]
    assert info["training_size"] == 30
    assert info["class_counts"] == {"negative": 10, "neutral": 10, "positive": 10}
    assert info["features"]["char_ngrams"] == [1, 4] and info["trained_at"]
    with np.load(ja_model_dir / "weights.npz", allow_pickle=False) as data:
        assert all(data[key].dtype != object for key in data.files)


def test_model_round_trip_gives_the_same_probabilities(tmp_path):
    rows, _ = read_labelled_tsv(JA)
    items = [prepare(r.text) for r in rows]
    model = SentimentModel.fit(items, [r.label for r in rows])
    model.save(tmp_path)
    loaded = SentimentModel.load(tmp_path)
    assert loaded.classes == model.classes
    np.testing.assert_allclose(loaded.probabilities(items), model.probabilities(items), atol=1e-5)
    # It learnt its own data
    predicted = [loaded.classes[i] for i in loaded.probabilities(items).argmax(1)]
    assert score([r.label for r in rows], predicted)["macro_f1"] >= 0.9


def test_model_label_has_score_from_probabilities_and_lexicon_evidence(ja_model_dir):
    model = SentimentModel.load(ja_model_dir)
    label = sentiment_of("駅で全然繋がらない、最悪", model=model)
    assert label.value == "negative"
    assert -1 <= label.score < 0
    assert label.evidence[0].startswith("model lr-charngram-1: P(neg)=")
    assert label.evidence[1].startswith("lexicon says negative")
    assert any("最悪" in line for line in label.evidence[2:])


def test_evaluate_with_a_model(ja_model_dir):
    data = json.loads(run("evaluate", str(JA), "--model", str(ja_model_dir), "--json").stdout)
    assert data["analyser"] == "lr-charngram-1"
    assert data["macro_f1"] >= 0.9


def test_two_class_training_gives_a_two_class_model(tmp_path):
    result = run("train", str(EN2), "--out", str(tmp_path), "--json")
    summary = json.loads(result.stdout)
    assert summary["classes"] == ["negative", "positive"]
    model = SentimentModel.load(tmp_path)
    label = sentiment_of("Worst support ever, the app keeps crashing", model=model)
    assert label.value == "negative"
    assert label.evidence[0].startswith("model lr-charngram-1: P(neg)=")


def test_train_reports_bad_rows_and_needs_two_classes(tmp_path):
    result = run("train", str(BAD), "--out", str(tmp_path / "m"))
    assert result.exit_code == 0
    assert "line 3: expected id<TAB>text<TAB>label" in result.stderr
    assert "4 rows skipped" in result.stdout
    one_class = tmp_path / "one.tsv"
    one_class.write_text("a\t良い\tpositive\nb\t最高\tpositive\n", encoding="utf-8")
    failed = CliRunner().invoke(main, ["train", str(one_class), "--out", str(tmp_path / "n")])
    assert failed.exit_code != 0 and "at least two classes" in failed.output


def test_train_needs_exactly_one_source(tmp_path):
    assert CliRunner().invoke(main, ["train", "--out", str(tmp_path)]).exit_code == 2
    assert CliRunner().invoke(main, ["train", str(JA), "--from-corrections", "--out", str(tmp_path)]).exit_code == 2


def test_a_model_folder_is_data_pickles_are_refused(tmp_path, ja_model_dir):
    import shutil
    folder = tmp_path / "evil"
    shutil.copytree(ja_model_dir, folder)
    np.savez(folder / "weights.npz", joint_coef=np.array([{"x": 1}], dtype=object))
    with pytest.raises(ModelError, match="damaged model"):
        SentimentModel.load(folder)
    with pytest.raises(ModelError, match="no model.json"):
        SentimentModel.load(tmp_path / "missing")


# ── YORISOI_MODEL_DIR in the pipeline ─────────────────────────────────────────────────────

def test_pipeline_uses_the_configured_model(app_factory, ja_model_dir):
    app = app_factory(YORISOI_MODEL_DIR=str(ja_model_dir))
    svc = app.extensions["yorisoi"]
    assert svc.pipeline.model is not None
    outcome = svc.pipeline.ingest_raw(post_dict(text="ソラモバイル、駅で全然繋がらない。最悪"), "test")
    assert outcome.status == "queued"
    _post, _decision, analysis = svc.store.posts.load_post(outcome.key)
    assert analysis.version == "lexicon-1+lr-charngram-1"
    assert analysis.sentiment.value == "negative"
    assert analysis.sentiment.evidence[0].startswith("model lr-charngram-1: P(neg)=")
    assert any(line.startswith("lexicon says") for line in analysis.sentiment.evidence)


def test_without_a_model_dir_the_shipped_label_model_decides(svc):
    outcome = svc.pipeline.ingest_raw(post_dict(), "test")
    _post, _decision, analysis = svc.store.posts.load_post(outcome.key)
    assert analysis.version == "lexicon-1+lr-labels-2"
    assert analysis.sentiment.evidence[0].startswith("model lr-labels-2: ")
    assert analysis.sentiment.confidence is not None


def test_model_dir_lexicon_keeps_the_lexicon_and_rules_alone(app_factory):
    svc = app_factory(YORISOI_MODEL_DIR="lexicon").extensions["yorisoi"]
    outcome = svc.pipeline.ingest_raw(post_dict(), "test")
    _post, _decision, analysis = svc.store.posts.load_post(outcome.key)
    assert analysis.version == "lexicon-1"
    assert not analysis.sentiment.evidence[0].startswith("model ")
    assert analysis.sentiment.confidence is None and analysis.unsure() == ()


def test_a_bad_model_dir_stops_start_up(app_factory, tmp_path):
    with pytest.raises(ConfigError, match="YORISOI_MODEL_DIR"):
        app_factory(YORISOI_MODEL_DIR=str(tmp_path / "nothing-here"))


def test_a_failing_model_falls_back_to_the_lexicon(ja_model_dir):
    model = SentimentModel.load(ja_model_dir)
    model.weights["joint"] = (np.zeros((2, 2), dtype=np.float32), np.zeros(2, dtype=np.float32))
    label = sentiment_of("駅で全然繋がらない、最悪", model=model)
    assert label.value == "negative"
    assert label.evidence[0].startswith("model lr-charngram-1 failed")


# ── corrections ───────────────────────────────────────────────────────────────────────────

def test_corrections_are_stored_and_listed(svc):
    key = svc.pipeline.ingest_raw(post_dict(text="ソラモバイル、普通に使えてます"), "test").key
    first = svc.store.corrections.add_correction(key, "sentiment", "positive", "agent-sato")
    svc.store.corrections.add_correction(key, "sentiment", "neutral", "agent-kato")
    rows = svc.store.corrections.list_corrections(label="sentiment")
    assert [r["id"] for r in rows][0] == first
    assert rows[0]["old_value"] in ("negative", "neutral", "positive")  # what the analysis said
    assert (rows[0]["new_value"], rows[0]["agent"]) == ("positive", "agent-sato")
    assert rows[0]["created_at"].tzinfo is not None
    # the latest correction wins
    assert svc.store.corrections.corrected_examples() == [(key, "ソラモバイル、普通に使えてます", "neutral", "ja")]


def test_corrections_are_validated(svc):
    key = svc.pipeline.ingest_raw(post_dict(), "test").key
    with pytest.raises(KeyError):
        svc.store.corrections.add_correction("x:nope", "sentiment", "positive", "agent")
    with pytest.raises(ValueError, match="unknown label"):
        svc.store.corrections.add_correction(key, "mood", "positive", "agent")
    with pytest.raises(ValueError, match="cannot be"):
        svc.store.corrections.add_correction(key, "sentiment", "happy", "agent")
    with pytest.raises(ValueError, match="agent"):
        svc.store.corrections.add_correction(key, "sentiment", "positive", " ")


def test_a_version_1_database_gets_the_corrections_table(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    store = Store(url)
    with store.engine.begin() as conn:  # make it look like a version-1 database
        conn.execute(sql("DROP TABLE corrections"))
        conn.execute(sql("DELETE FROM schema_version"))
        conn.execute(sql("INSERT INTO schema_version (version, applied_at) VALUES (1, '2026-01-01 00:00:00')"))
    store.engine.dispose()
    upgraded = Store(url)
    with upgraded.engine.connect() as conn:
        versions = [row[0] for row in conn.execute(sql("SELECT version FROM schema_version ORDER BY version"))]
    # The corrections table came with no version of its own (create_all adds new tables);
    # the upgrade still runs every later migration.
    assert versions == list(range(1, SCHEMA_VERSION + 1))
    assert upgraded.corrections.list_corrections() == []
    upgraded.engine.dispose()


def test_train_from_corrections_fine_tunes_every_label(app_factory, env, tmp_path):
    app = app_factory()
    svc = app.extensions["yorisoi"]
    rows, _ = read_labelled_tsv(JA)
    for n, row in enumerate(rows):
        key = svc.pipeline.ingest_raw(post_dict(text=f"ソラモバイル {row.text}", id=f"c{n}"), "test").key
        svc.store.corrections.add_correction(key, "sentiment", row.label, "agent-sato")
        if row.label == "negative":
            svc.store.corrections.add_correction(key, "intent", "complaint", "agent-sato")
    svc.store.engine.dispose()
    out = tmp_path / "from-corrections"
    corpus = small_corpus(tmp_path)
    result = CliRunner().invoke(main, ["train", "--from-corrections", "--corpus", str(corpus), "--out", str(out),
                                       "--json"], env=env)
    summary = json.loads(result.stdout)
    assert summary["trained_on_corrections"] + summary["held_back"] == 30
    assert summary["held_back"] >= 1 and set(summary["after"]) >= {"sentiment", "all", "n"}
    assert summary["source"] == f"corpus corpus + {summary['trained_on_corrections']} corrections"
    if summary["saved"]:
        assert result.exit_code == 0, result.output
        model = load_model_folder(out)
        assert model.meta["corrections"] == summary["trained_on_corrections"]
    else:  # worse than the current model on the held-back corrections: refused, nothing written
        assert result.exit_code == 1 and not out.exists()


def test_a_fine_tuned_model_that_got_worse_is_not_saved(app_factory, env, tmp_path, monkeypatch):
    from connector.analysis import training
    app = app_factory()
    svc = app.extensions["yorisoi"]
    key = svc.pipeline.ingest_raw(post_dict(text="ソラモバイル、繋がらない"), "test").key
    svc.store.corrections.add_correction(key, "sentiment", "negative", "agent-sato")
    svc.store.engine.dispose()

    def worse(folder, corrections, current, *, weight):
        model = training.train_on_corpus(folder)
        return training.FineTuned(model, {"all": 0.9, "n": 1}, {"all": 0.5, "n": 1}, 0, 1)

    monkeypatch.setattr(training, "fine_tune", worse)
    out = tmp_path / "worse"
    result = CliRunner().invoke(main, ["train", "--from-corrections", "--corpus", str(small_corpus(tmp_path)),
                                       "--out", str(out)], env=env)
    assert result.exit_code == 1
    assert "not saved" in result.output and not out.exists()


def test_train_from_corrections_without_any(env, tmp_path):
    result = CliRunner().invoke(main, ["train", "--from-corrections", "--out", str(tmp_path / "m")], env=env)
    assert result.exit_code != 0 and "no corrections of sentiment, intent" in result.output


# ── the shared dev files (evaluation only; absent outside the team's machines) ────────────

@pytest.mark.parametrize("name,bar", [("jrte-pn", 0.62), ("wrime-v1-derived", 0.50), ("tweeteval-sentiment", 0.55)])
def test_out_of_the_box_bars_on_the_shared_dev_files(name, bar):
    path = SHARED_DATA / name / "dev.tsv"
    if not path.is_file():
        pytest.skip(f"{path} is absent (research data lives outside the repository)")
    data = json.loads(run("evaluate", str(path), "--json").stdout)
    assert data["macro_f1"] >= bar
