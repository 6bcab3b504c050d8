"""`Store`: the connector's database, as one repository per concern.

Shaped like python-social-auth's `BaseStorage`: a thin holder whose attributes are the
repositories (`store.posts`, `store.outbox`, …); it has no queries of its own. Each repository
method opens its own transaction; the module-level functions of `connector.db.counts` join
the caller's (`conn`), so a batch of posts and its dashboard counts are one transaction.
"""
from __future__ import annotations

from connector.db.accounts import AccountRepository
from connector.db.channel import ChannelRepository
from connector.db.compliance import ComplianceRepository
from connector.db.corrections import CorrectionRepository
from connector.db.engine import make_engine
from connector.db.exchanges import ExchangeRepository
from connector.db.migrations import migrate
from connector.db.outbox import OutboxRepository
from connector.db.posts import PostRepository
from connector.db.reports import ReportRepository
from connector.db.sources import SourceStateRepository
from connector.db.storms import StormRepository
from connector.db.ticket_status import TicketStatusRepository
from connector.db.tickets import LocalTicketRepository


class Store:
    posts: PostRepository
    outbox: OutboxRepository
    exchanges: ExchangeRepository
    reports: ReportRepository
    sources: SourceStateRepository
    compliance: ComplianceRepository
    channel: ChannelRepository
    storms: StormRepository
    accounts: AccountRepository
    corrections: CorrectionRepository
    tickets: LocalTicketRepository
    ticket_status: TicketStatusRepository

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.dialect = self.engine.dialect.name  # "sqlite" | "postgresql"
        self.migrate()
        engine = self.engine
        self.posts = PostRepository(engine)
        self.outbox = OutboxRepository(engine)
        self.exchanges = ExchangeRepository(engine)
        self.reports = ReportRepository(engine)
        self.sources = SourceStateRepository(engine)
        self.compliance = ComplianceRepository(engine)
        self.channel = ChannelRepository(engine)
        self.storms = StormRepository(engine)
        self.accounts = AccountRepository(engine)
        self.corrections = CorrectionRepository(engine)
        self.tickets = LocalTicketRepository(engine)
        self.ticket_status = TicketStatusRepository(engine)

    def __repr__(self) -> str:  # the URL may carry a password
        return f"Store({self.engine.url.render_as_string(hide_password=True)!r})"

    def migrate(self) -> None:
        """Create a fresh schema, or bring an older one up to date (see `migrations.migrate`)."""
        migrate(self.engine)

