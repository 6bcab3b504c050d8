"""Ingest tags each post once (issue 17): the complaint topics come from the analysis's own
nagisa tokens, and the labels and topics are what they were."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import select

from connector.analysis import text as analysis_text
from connector.analysis.text import detect_language, normalize
from connector.config import DEMO_FEED, DEMO_WATCH
from connector.db.schema import analyses, post_topics
from connector.topics import brand_terms, topics_of_text, topics_of_tokens, watch_terms

GOLDEN = Path(__file__).parent / "fixtures" / "demo_labels.json"
FIXED = datetime(2026, 11, 21, tzinfo=timezone.utc)


class CountingTagger:
    def __init__(self, real) -> None:
        self.real, self.texts = real, []

    def tagging(self, text: str):
        self.texts.append(text)
        return self.real.tagging(text)


def test_ingest_tags_each_japanese_post_once_and_keeps_labels_and_topics(app_factory, tmp_path, monkeypatch):
    svc = app_factory(YORISOI_DATA_DIR=str(tmp_path), YORISOI_WATCH=str(DEMO_WATCH)).extensions["yorisoi"]
    svc.pipeline.clock = lambda: FIXED
    tagger = CountingTagger(analysis_text._tagger())
    monkeypatch.setattr(analysis_text, "_tagger", lambda: tagger)
    analysis_text.tokenize.cache_clear()
    lines = [line for line in DEMO_FEED.read_text(encoding="utf-8").splitlines() if line.strip()]
    svc.pipeline.ingest_lines(lines, "demo")
    with svc.store.engine.connect() as conn:
        labels = dict(conn.execute(select(analyses.c.post_key, analyses.c.detail)).all())
        stored: dict[str, set[str]] = {}
        for key, topic in conn.execute(select(post_topics.c.post_key, post_topics.c.topic)).all():
            stored.setdefault(key, set()).add(topic)
    posts = {f"{p['platform']}:{p['id']}": p for p in map(json.loads, lines)}
    japanese = [k for k in labels if detect_language(normalize(posts[k]["text"]), posts[k].get("lang")) == "ja"]
    # One nagisa call per analysed Japanese post (all short: one chunk each), none for topics.
    assert len(tagger.texts) == len(japanese) and len(set(tagger.texts)) == len(tagger.texts)
    assert labels == json.loads(GOLDEN.read_text(encoding="utf-8"))  # the labels are unchanged
    terms = watch_terms(svc.watch)
    assert stored and all(set(topics_of_text(posts[k]["text"], exclude=terms, lang=posts[k].get("lang"))) == topics
                          for k, topics in stored.items())  # what `yorisoi report --rebuild` computes


def test_a_brand_term_is_a_break_wherever_nagisa_cuts_it() -> None:
    terms = brand_terms(["ソラ光", "ソラアプリ", "ソラモバイル"])
    tokens = analysis_text.tokenize(normalize("ソラ光の工事日程がまた延期。ソラアプリのアプリが落ちる"))
    found = topics_of_tokens(tokens, exclude=terms)
    assert "光" not in found and "アプリ" in found and "工事日程" in found
    assert not any("ソラ" in t for t in found)
