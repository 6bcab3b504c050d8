"""A long-running process (serve, poll, replay) warms up before its first post: what that post
would load is loaded, then frozen out of the garbage collector's passes (issue 17)."""
from __future__ import annotations

import gc
from typing import Iterator

import pytest

from connector.analysis import text as analysis_text
from connector.config import Settings
from connector.services import WARM_GC_THRESHOLD, Services


@pytest.fixture
def collector() -> Iterator[None]:
    """The collector as this test found it, afterwards (the rest of the suite runs as usual)."""
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_warm_up_loads_the_tagger_and_freezes_what_was_loaded(env: dict[str, str], collector: None) -> None:
    svc = Services.build(Settings.from_env(env))
    try:
        gc.unfreeze()
        svc.warm_up()
        assert analysis_text._tagger.cache_info().currsize == 1  # nagisa is loaded: the first post waits no longer
        assert gc.get_freeze_count() > 100_000  # the models, lexicons and vocabularies
        assert gc.get_threshold()[0] == WARM_GC_THRESHOLD
        # and the pipeline works as before
        [outcome] = svc.pipeline.ingest_many([{
            "platform": "x", "id": "warm-1", "created_at": "2026-11-20T10:00:00Z", "lang": "ja",
            "text": "ソラモバイル、全然繋がらない。困ってます", "author": {"id": "a1", "handle": "a"}}], "test")
        assert outcome.status == "queued"
    finally:
        svc.close()
