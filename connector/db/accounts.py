"""Agent bearer tokens (the sidebar's API) and dashboard supervisors."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Engine

from connector.db.engine import dialect_insert, new_id, utcnow
from connector.db.schema import agent_tokens, users


@dataclass(frozen=True, slots=True)
class AgentToken:
    """An agent's bearer token as stored: only its SHA-256 (`token_hash`), never the token."""

    id: int
    token_hash: str
    agent: str  # the agent's name as customers see it (佐藤)
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None
    origin: str | None = None  # cli | signin | sso (None: made by the CLI before schema 6)


class AccountRepository:
    """Agent bearer tokens (the sidebar's API) and dashboard supervisors."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add_agent_token(self, agent: str, token_hash: str, origin: str = "cli") -> int:
        with self.engine.begin() as conn:
            return new_id(conn.execute(insert(agent_tokens).values(
                token_hash=token_hash, agent=agent, created_at=utcnow(), origin=origin)))

    def agent_token_by_hash(self, token_hash: str) -> AgentToken | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(agent_tokens).where(agent_tokens.c.token_hash == token_hash)).mappings().first()
        return AgentToken(**row) if row else None

    def list_agent_tokens(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(agent_tokens.c.id, agent_tokens.c.agent, agent_tokens.c.created_at,
                                       agent_tokens.c.revoked_at, agent_tokens.c.last_used_at,
                                       agent_tokens.c.origin)
                                .order_by(agent_tokens.c.id)).mappings().all()
        return [dict(r) for r in rows]

    def revoke_agent_token(self, token_id: int) -> bool:
        """Revoke a token; False when there is no such token or it was revoked already."""
        with self.engine.begin() as conn:
            return conn.execute(update(agent_tokens).where(agent_tokens.c.id == token_id)
                                .where(agent_tokens.c.revoked_at.is_(None))
                                .values(revoked_at=utcnow())).rowcount == 1

    def touch_agent_token(self, token_id: int, at: datetime, *, not_since: datetime) -> bool:
        """Set last_used_at, but only when the stored one is older than `not_since`: one write
        per token per minute or so, not one per sidebar request.

        It never waits for a lock: the sidebar's read requests call it, and a database busy
        with another writer (SQLite's single write lock, a PostgreSQL row lock) must not fail
        or stall them (issue 16 #15). Returns False when it was skipped for a lock; the next
        request tries again."""
        from connector.db.engine import LOCK_TIMEOUT_SECONDS
        from connector.db.errors import Unavailable

        sqlite = self.engine.dialect.name == "sqlite"
        with self.engine.connect() as conn:
            if sqlite:
                conn.exec_driver_sql("PRAGMA busy_timeout = 0")
                conn.commit()
            try:
                with conn.begin():
                    if not sqlite:
                        conn.exec_driver_sql("SET LOCAL lock_timeout = '100ms'")
                    conn.execute(update(agent_tokens).where(agent_tokens.c.id == token_id)
                                 .where((agent_tokens.c.last_used_at.is_(None)) | (agent_tokens.c.last_used_at < not_since))
                                 .values(last_used_at=at))
                return True
            except Unavailable:
                return False
            finally:
                if sqlite:
                    conn.exec_driver_sql(f"PRAGMA busy_timeout = {int(LOCK_TIMEOUT_SECONDS * 1000)}")
                    conn.commit()

    def create_user(self, name: str, password_hash: str, *, replace: bool = False) -> bool:
        """Add a supervisor; with `replace`, set a new password for an existing one. Returns
        False when the name exists and `replace` is not set."""
        now = utcnow()
        with self.engine.begin() as conn:
            stmt = dialect_insert(conn, users).values(name=name, password_hash=password_hash, created_at=now)
            if replace:
                # A new password ends every session signed in with the old one.
                stmt = stmt.on_conflict_do_update(index_elements=["name"], set_={
                    "password_hash": password_hash,
                    "session_generation": func.coalesce(users.c.session_generation, 0) + 1})
            else:
                stmt = stmt.on_conflict_do_nothing(index_elements=["name"])
            # RETURNING, not rowcount (-1 on PostgreSQL with an implicit RETURNING of the id).
            return conn.execute(stmt.returning(users.c.name)).first() is not None

    def user_password_hash(self, name: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(select(users.c.password_hash).where(users.c.name == name)).scalar()

    def session_generation(self, name: str) -> int | None:
        """The account's current session generation; None when there is no such account."""
        with self.engine.connect() as conn:
            row = conn.execute(select(users.c.session_generation).where(users.c.name == name)).first()
        return None if row is None else int(row.session_generation or 0)

    def end_sessions(self, name: str) -> bool:
        """Sign the account out everywhere: every session issued before now is refused."""
        with self.engine.begin() as conn:
            return conn.execute(update(users).where(users.c.name == name).values(
                session_generation=func.coalesce(users.c.session_generation, 0) + 1)).rowcount == 1

    def delete_user(self, name: str) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(delete(users).where(users.c.name == name)).rowcount == 1

    def record_login(self, name: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(users).where(users.c.name == name).values(last_login_at=utcnow()))

    def list_users(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(users.c.name, users.c.created_at, users.c.last_login_at)
                                                  .order_by(users.c.name)).mappings().all()]
