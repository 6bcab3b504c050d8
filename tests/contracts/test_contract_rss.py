"""Contract: the RSS source reads what real feeds look like.

Reference: feedparser's own test corpus (../shared/specs/rss/feedparser-tests/, ≈1,000 RSS, Atom
and RDF documents: every encoding, ill-formed and well-formed; skipped with the reason when
absent). Every document is served over HTTP on loopback and polled by the real source
(connector.sources.rss): none may crash it (an unreadable feed is a SourceError, which the
poller reports). On the documents whose `Expect:` line pins an entry's id, link or date, the
post we build carries that id, url and date. Nothing from the corpus is copied into the repo.
"""
from __future__ import annotations

import ast
import calendar
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import feedparser
import pytest
from werkzeug import Request, Response

from connector.sources.base import SourceError
from connector.sources.rss import RssSource
from connector.watch import Feed, parse_watch
from tests.contracts.openapi import SPECS
from tests.fakes.base import FakeServer
from tests.fakes.fixtures import serve_fake  # noqa: F401

CORPUS = SPECS / "rss" / "feedparser-tests"

pytestmark = pytest.mark.skipif(
    not CORPUS.is_dir(), reason="../shared/specs/rss/feedparser-tests (feedparser's test corpus) is absent beside the repository")

WATCH = parse_watch({"brand": [{"name": "Example", "keywords": ["example"]}]})
#: `Expect:` clauses that pin one field of the first entry to a literal.
PINNED = re.compile(r"^Expect:\s+not bozo and entries\[0\]\['(id|guid|link|published_parsed|updated_parsed)'\] == (.+)$", re.M)


def corpus_files() -> list[Path]:
    return sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.suffix in (".xml", ".rdf", ".atom", ".rss"))


class CorpusHost(FakeServer):
    """Serves each corpus document at its relative path, as application/xml without a charset
    (so the document's own encoding declaration decides, as for a file on a plain web server)."""
    name = "corpus"

    def __init__(self) -> None:
        super().__init__()
        self.bodies = {"/" + str(p.relative_to(CORPUS)): p.read_bytes() for p in corpus_files()}

    def routes(self):
        return [("GET", re.compile(r"(/.+)"), self.serve)]

    def serve(self, request: Request, _body: Any, path: str) -> Response:
        body = self.bodies.get(path)
        return Response(body, 200, content_type="application/xml") if body is not None else Response("", 404)


def source_for(urls: list[str]) -> RssSource:
    # An entry without a date takes the source clock: a fixed day in the past, inside the post
    # schema's window (no later than a day after the server's clock).
    return RssSource(state=None, watch=WATCH, feeds=[Feed(url=u, name="corpus") for u in urls],
                     clock=lambda: datetime(2026, 1, 1, tzinfo=timezone.utc))


def test_every_corpus_document_is_read_without_a_crash(serve_fake):
    host = serve_fake(CorpusHost())
    paths = sorted(host.bodies)
    assert len(paths) > 900
    source = source_for([host.url + p for p in paths])
    read = unreadable = entries = 0
    crashes = []
    for unit in source.units():
        try:
            result = source.poll(unit, None)
        except SourceError:
            unreadable += 1  # reported by the poller as "not a readable feed", then retried
            continue
        except Exception as exc:  # noqa: BLE001 - the point: nothing else may escape
            crashes.append(f"{unit}: {type(exc).__name__}: {exc}")
            continue
        read += 1
        entries += len(result.posts) + result.skipped
    assert not crashes, "\n".join(crashes[:20])
    assert read > 0.9 * len(paths) and unreadable < 0.1 * len(paths), (read, unreadable)


def expectations() -> list[tuple[Path, str, Any]]:
    found = []
    for path in corpus_files():
        head = path.read_bytes()[:2000].decode("utf-8", "replace")
        m = PINNED.search(head)
        if not m:
            continue
        try:
            value = ast.literal_eval(m.group(2).strip())
        except (ValueError, SyntaxError):
            continue  # compares with another entry, not a literal
        if isinstance(value, str) and "127.0.0.1:8097" in value:
            continue  # relative to feedparser's own test server's address
        found.append((path, m.group(1), value))
    return found


def mismatch(body: bytes, url: str, field: str, expected: Any) -> str | None:
    """What our post says about `field` if it disagrees with `expected`, else None."""
    # As feedparser's own harness: the HTTP headers a document declares in its `Header:` lines
    # (Content-Location for the relative-URL samples), no others. (`poll` also passes the
    # feed's URL as Content-Location, so in production a relative id resolves against it: still
    # one stable id per entry.)
    head = body[:2000].decode("utf-8", "replace").split("-->", 1)[0]
    headers = {"content-type": "application/xml"}
    headers.update({k.strip().lower(): v.strip() for k, v in re.findall(r"^Header:\s*([\w-]+):\s*(.+)$", head, re.M)})
    parsed = feedparser.parse(body, response_headers=headers)
    entry = parsed.entries[0]
    if not (entry.get("title") or entry.get("summary") or entry.get("content")):
        # Most samples pin one field on an otherwise empty entry; an entry without text is
        # (rightly) no post, so give it a title: the id, url and date are what is checked.
        entry["title"] = "example"
    post = source_for([url])._to_post(entry, Feed(url=url, name="corpus"), "corpus", None)
    if post is None:
        return None if field in ("published_parsed", "updated_parsed") else f"no post (wanted {field}={expected!r})"
    if field in ("id", "guid"):
        return None if post.id == expected else f"id {post.id!r} != {expected!r}"
    if field == "link":
        if entry.get("id"):
            return None if post.url == expected else f"url {post.url!r} != {expected!r}"
        return None if post.url == expected and post.id == expected else f"url/id {post.url!r}/{post.id!r} != {expected!r}"
    if field == "updated_parsed" and entry.get("published_parsed"):
        return None  # the post's date is the published one when both are given
    wanted = datetime.fromtimestamp(calendar.timegm(tuple(expected)), tz=timezone.utc)
    return None if post.created_at == wanted else f"date {post.created_at.isoformat()} != {wanted.isoformat()}"


def test_posts_carry_the_entries_id_url_and_date():
    samples = expectations()
    kinds = {field for _p, field, _v in samples}
    assert len(samples) >= 20 and {"id", "link", "published_parsed"} <= kinds, kinds
    problems = []
    for path, field, expected in samples:
        url = "http://feeds.example.org/" + str(path.relative_to(CORPUS))
        problem = mismatch(path.read_bytes(), url, field, expected)
        if problem:
            problems.append(f"{path.relative_to(CORPUS)}: {problem}")
    assert not problems, "\n".join(problems)


def test_a_deliberately_wrong_entry_field_fails():
    path = CORPUS / "wellformed" / "rss" / "item_guid.xml"
    if not path.is_file():
        pytest.skip("wellformed/rss/item_guid.xml is not in this corpus")
    body = path.read_bytes()
    assert mismatch(body, "http://feeds.example.org/x.xml", "guid", "http://guid.example.com/") is None
    wrong = body.replace(b"http://guid.example.com/", b"http://other.example.com/")
    assert "other.example.com" in mismatch(wrong, "http://feeds.example.org/x.xml", "guid", "http://guid.example.com/")
