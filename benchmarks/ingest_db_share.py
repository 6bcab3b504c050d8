"""Where batch ingest's database time goes (issue 17): CPU and wall time of every statement
`Pipeline.ingest_many` runs, per table written or read, and of the commits, as a share of the
whole ingest. Prints one JSON object.

It answers "how much can the storage side still give?" before anyone rewrites it: each
statement is timed around `Connection.execute` (SQLAlchemy's compile and bind processing
included, the Python that builds the rows not), so the figures are an upper bound of what
making those statements cheaper can save.

    python benchmarks/ingest_db_share.py [--posts 2000] [--batch 200] [--database URL]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pipeline_throughput import synthetic_posts, warm_services  # noqa: E402
from sqlalchemy.engine import Connection  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--posts", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--database", default=None, help="YORISOI_DATABASE (default: SQLite in a temporary folder)")
    args = parser.parse_args()
    posts = synthetic_posts(args.posts)
    cpu: Counter[str] = Counter()
    wall: Counter[str] = Counter()
    calls: Counter[str] = Counter()
    execute = Connection.execute

    def timed(name: str, run: Any) -> Any:
        started, cpu_started = time.perf_counter(), time.process_time()
        try:
            return run()
        finally:
            wall[name] += time.perf_counter() - started
            cpu[name] += time.process_time() - cpu_started
            calls[name] += 1

    def timed_execute(self: Connection, statement: Any, *args: Any, **kwargs: Any) -> Any:
        # A statement run inside another one's timing (none today) would count twice: the
        # table of a DML statement, the statement's class otherwise (Select, TextClause).
        name = getattr(getattr(statement, "table", None), "name", None) or type(statement).__name__
        return timed(name, lambda: execute(self, statement, *args, **kwargs))

    with tempfile.TemporaryDirectory() as tmp:
        svc = warm_services(tmp, args.database, posts)
        Connection.execute = timed_execute  # type: ignore[method-assign]
        # engine.begin() commits through the Transaction, not Connection.commit: time that.
        from sqlalchemy.engine.base import RootTransaction
        root_commit = RootTransaction._do_commit
        RootTransaction._do_commit = lambda self: timed("COMMIT", lambda: root_commit(self))  # type: ignore[method-assign]
        try:
            started, cpu_started = time.perf_counter(), time.process_time()
            for i in range(0, len(posts), args.batch):
                svc.pipeline.ingest_many(posts[i:i + args.batch], "bench")
            ingest_s, ingest_cpu = time.perf_counter() - started, time.process_time() - cpu_started
        finally:
            Connection.execute = execute  # type: ignore[method-assign]
            RootTransaction._do_commit = root_commit  # type: ignore[method-assign]
        svc.close()
    print(json.dumps({
        "posts": len(posts),
        "batch": args.batch,
        "ingest_cpu_s": round(ingest_cpu, 3),
        "ingest_wall_s": round(ingest_s, 3),
        "statements_cpu_share": round(sum(cpu.values()) / ingest_cpu, 3),
        "by_table": {name: {"calls": calls[name], "cpu_s": round(cpu[name], 3), "wall_s": round(wall[name], 3),
                            "cpu_share": round(cpu[name] / ingest_cpu, 3)}
                     for name, _ in cpu.most_common()},
        "database": args.database.split("@")[-1] if args.database else "sqlite (temporary file)",
        "load_average_1m": round(os.getloadavg()[0], 2),
    }, indent=1))


if __name__ == "__main__":
    main()
