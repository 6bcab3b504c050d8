"""The tickets page's text search by index, not by reading every ticket's text (issue 19).

`LIKE '%…%'` over the text of 467k ticket posts took 7–10 s. Japanese has no spaces between
words, so a word tokenizer finds nothing useful; a trigram index finds any substring of three
characters or more, in any language:

- SQLite: an FTS5 table `ticket_search` with the `trigram` tokenizer (SQLite ≥ 3.34,
  https://sqlite.org/fts5.html#the_trigram_tokenizer). Its rowid is the ticket post's
  `outbox.id` — an INTEGER PRIMARY KEY, so VACUUM keeps it, unlike the implicit rowid of
  `tickets` — and it is kept in the same transaction as the ticket insert and the purge.
- PostgreSQL: `pg_trgm` GIN indexes on posts.text and tickets.subject, which serve LIKE
  directly (https://www.postgresql.org/docs/current/pgtrgm.html#PGTRGM-INDEX). CREATE
  EXTENSION may need rights the connector's role lacks: then the search stays a scan and the
  log says so once, at migration.

The index only narrows the candidates: each one is checked again with the same LIKE the scan
used, so results are identical to the scan (the trigram tokenizer folds case beyond ASCII, LIKE
does not; the index finds a superset). Queries shorter than three characters cannot use
trigrams (FTS5 returns no rows for them); they read the FTS table's own copy of the text with
LIKE — one compact table, no joins per row, ~0.2 s at 467k tickets (never read twice: the
count is skipped when the page is not full). Either way SQLite keeps
the newest 10,001 matches (the page counts up to 10,000 and says "10,000件以上" past it), so a
word found in every ticket costs no more than a rare one.
"""
from __future__ import annotations

import logging
from typing import Any, Sequence

from sqlalchemy import Integer, bindparam, column, or_, select, table, text
from sqlalchemy.engine import Connection

from connector.db.schema import authors, outbox, posts, tickets

log = logging.getLogger(__name__)

TRIGRAM = 3  # characters; shorter queries cannot be looked up in a trigram index
BACKFILL_BATCH = 20_000

#: The FTS5 table, as SQLAlchemy sees it for queries (it is created by raw DDL below).
ticket_search = table("ticket_search", column("rowid", Integer), column("subject"), column("text"),
                      column("ticket_search"))
#: Its content, as FTS5 stores it: id = rowid, c0 = subject, c1 = text (columns in DDL order).
ticket_search_content = table("ticket_search_content", column("id", Integer), column("c0"), column("c1"))


def like_pattern(needle: str) -> str:
    """`needle` as a LIKE pattern matching it anywhere, with its own % _ \\ taken literally."""
    return "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def fts_phrase(needle: str) -> str:
    """`needle` as one FTS5 string: inside double quotes every character is literal (AND, *,
    NEAR(, ^, :), a double quote is doubled (https://sqlite.org/fts5.html#fts5_strings)."""
    return '"' + needle.replace('"', '""') + '"'


def create_search_index(conn: Connection) -> bool:
    """Create the trigram index of this database (idempotent). False when PostgreSQL has no
    pg_trgm for us: the search then falls back to the LIKE scan."""
    if conn.dialect.name == "sqlite":
        conn.execute(text("CREATE VIRTUAL TABLE IF NOT EXISTS ticket_search "
                          "USING fts5(subject, text, tokenize='trigram')"))
        return True
    try:
        with conn.begin_nested():
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except Exception as exc:  # noqa: BLE001 - e.g. InsufficientPrivilege: search still works, slowly
        log.warning("ticket search: pg_trgm is not available (%s: %s); /tickets?q= scans every ticket. "
                    "A superuser can run CREATE EXTENSION pg_trgm and restart.",
                    type(exc).__name__, str(exc).splitlines()[0][:200])
        return False
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_posts_text_trgm ON posts USING gin (text gin_trgm_ops)"))
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_tickets_subject_trgm ON tickets USING gin (subject gin_trgm_ops)"))
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_authors_handle_trgm ON authors USING gin (handle gin_trgm_ops)"))
    return True


def has_search_index(conn: Connection) -> bool:
    if conn.dialect.name == "sqlite":
        return conn.execute(text("SELECT 1 FROM sqlite_master WHERE name = 'ticket_search'")).first() is not None
    return conn.execute(text("SELECT count(*) FROM pg_indexes WHERE indexname IN "
                             "('ix_posts_text_trgm', 'ix_tickets_subject_trgm', 'ix_authors_handle_trgm')")).scalar() == 3


def index_ticket(conn: Connection, post_key: str) -> None:
    """(Re)index the ticket of `post_key` from its current subject and post text, in the
    caller's transaction; nothing when the post has no ticket. PostgreSQL's GIN indexes
    follow the tables by themselves."""
    if conn.dialect.name != "sqlite":
        return
    row = conn.execute(select(outbox.c.id, tickets.c.subject, posts.c.text)
                       .join(tickets, tickets.c.post_key == outbox.c.post_key)
                       .join(posts, posts.c.key == outbox.c.post_key)
                       .where(outbox.c.post_key == post_key)).first()
    if row is None:
        return
    conn.execute(text("DELETE FROM ticket_search WHERE rowid = :id"), {"id": row.id})
    conn.execute(text("INSERT INTO ticket_search (rowid, subject, text) VALUES (:id, :subject, :text)"),
                 {"id": row.id, "subject": row.subject, "text": row.text})


def index_tickets(conn: Connection, post_keys: Sequence[str]) -> None:
    """`index_ticket` for many tickets at once (a bulk job's), in two statements."""
    if conn.dialect.name != "sqlite" or not post_keys:
        return
    rows = conn.execute(select(outbox.c.id, tickets.c.subject, posts.c.text)
                        .join(tickets, tickets.c.post_key == outbox.c.post_key)
                        .join(posts, posts.c.key == outbox.c.post_key)
                        .where(outbox.c.post_key.in_(list(post_keys)))).all()
    if not rows:
        return
    conn.execute(text("DELETE FROM ticket_search WHERE rowid = :id"), [{"id": row.id} for row in rows])
    conn.execute(text("INSERT INTO ticket_search (rowid, subject, text) VALUES (:id, :subject, :text)"),
                 [{"id": row.id, "subject": row.subject, "text": row.text} for row in rows])


def backfill_search_index(conn: Connection, batch: int = BACKFILL_BATCH) -> int:
    """Index every ticket not indexed yet, `batch` at a time in outbox.id order (migration 8);
    returns how many. Re-running picks up where it stopped."""
    if conn.dialect.name != "sqlite":
        return 0
    done = 0
    last = conn.execute(text("SELECT coalesce(max(rowid), 0) FROM ticket_search")).scalar() or 0
    while True:
        ids = list(conn.execute(select(outbox.c.id).join(tickets, tickets.c.post_key == outbox.c.post_key)
                                .where(outbox.c.id > last).order_by(outbox.c.id).limit(batch)).scalars())
        if not ids:
            return done
        conn.execute(text("INSERT INTO ticket_search (rowid, subject, text) "
                          "SELECT o.id, t.subject, p.text FROM outbox o JOIN tickets t ON t.post_key = o.post_key "
                          "JOIN posts p ON p.key = o.post_key WHERE o.id BETWEEN :lo AND :hi "
                          "AND o.id NOT IN (SELECT rowid FROM ticket_search WHERE rowid BETWEEN :lo AND :hi)"),
                     {"lo": ids[0], "hi": ids[-1]})
        done += len(ids)
        last = ids[-1]
        log.info("ticket search index: %d tickets indexed", done)


def text_condition(conn: Connection, needle: str, window: int = 10_001) -> Any:
    """A WHERE condition on `tickets`: `needle` in the ticket's subject, its post's text or
    its author's handle, exactly as LIKE finds it, using the trigram index where there is one.
    On SQLite at most the newest `window` tickets matching in subject or text are found."""
    pattern = like_pattern(needle)
    of_handle = select(posts.c.key).where(posts.c.author_key.in_(
        select(authors.c.key).where(authors.c.handle.like(pattern, escape="\\"))))
    by_handle = tickets.c.post_key.in_(of_handle)
    if conn.dialect.name == "sqlite" and has_search_index(conn):
        if len(needle) >= TRIGRAM:
            found = (select(ticket_search.c.rowid)
                     .where(text("ticket_search MATCH :phrase").bindparams(bindparam("phrase", fts_phrase(needle))))
                     .where(or_(ticket_search.c.subject.like(pattern, escape="\\"),
                                ticket_search.c.text.like(pattern, escape="\\")))
                     .order_by(ticket_search.c.rowid.desc()))
        else:
            # Too short for trigrams: LIKE over the FTS table's own copy of the text, read from its
            # %_content shadow table (https://sqlite.org/fts5.html#the_content_option): a plain
            # table, 0.18 s for 467k tickets where the same scan through the virtual table takes
            # 0.46 s.
            c = ticket_search_content.c
            found = (select(c.id).where(or_(c.c0.like(pattern, escape="\\"), c.c1.like(pattern, escape="\\")))
                     .order_by(c.id.desc()))
        # The newest `window` matches (rowid = outbox.id: queue order), so a word in every
        # ticket costs no more than a rare one; the page's count stops at the same cap.
        found = found.limit(window)
        # One IN over both candidate sets (not OR of two): SQLite then looks the candidates up
        # instead of walking every ticket to test two conditions.
        return tickets.c.post_key.in_(select(outbox.c.post_key).where(outbox.c.id.in_(found)).union(of_handle))
    # PostgreSQL (the GIN indexes serve these LIKEs as bitmap scans) or no index: the scan.
    in_posts = select(posts.c.key).where(posts.c.text.like(pattern, escape="\\"))
    return or_(tickets.c.subject.like(pattern, escape="\\"), tickets.c.post_key.in_(in_posts), by_handle)
