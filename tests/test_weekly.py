"""The weekly report: this week against the previous one, page, CLI and Excel."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner

from connector import weekly
from connector.cli import main
from tests.conftest import csrf_from, post_dict


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def loaded(app):
    svc = app.extensions["yorisoi"]
    now = datetime.now(timezone.utc)
    for days_ago, n in ((1, 3), (9, 1)):  # this week 3 complaints, the previous week 1
        for i in range(n):
            svc.pipeline.ingest_raw(post_dict(text=f"ソラモバイル、駅で全然繋がらない。最悪 {days_ago}-{i}",
                                              created_at=_iso(now - timedelta(days=days_ago)),
                                              author={"id": f"7{days_ago}{i}"}), "test")
    svc.pipeline.drain(max_wait=5)
    return app


def test_weekly_tables_compare_two_weeks(loaded):
    svc = loaded.extensions["yorisoi"]
    report = weekly.build(svc.store, {})
    names = [t.name for t in report.tables]
    assert names == ["weekly_summary", "weekly_daily", "weekly_sources", "weekly_labels", "weekly_topics",
                     "weekly_sla", "weekly_storms", "weekly_corrections"]
    summary = {r[5]: r for r in report.tables[0].rows}
    assert summary["Qualified posts"][1:4] == [3, 1, 2]
    assert report.this.until - report.this.since == timedelta(days=6)
    assert report.previous.until == report.this.since - timedelta(days=1)
    sla_rows = weekly.display_rows(report.tables[5], "ja")
    assert any(r[0] == "今週" for r in sla_rows) and any("時間" in r[2] or "分" in r[2] or "日" in r[2] for r in sla_rows)


def test_weekly_page_and_downloads(loaded):
    from connector.web.auth import hash_password
    loaded.extensions["yorisoi"].store.accounts.create_user("sv", hash_password("a-long-password-監督"), replace=True)
    client = loaded.test_client()
    token = csrf_from(client.get("/login").get_data(as_text=True))
    client.post("/login", data={"name": "sv", "password": "a-long-password-監督", "csrf_token": token})
    page = client.get("/reports/weekly?lang=ja").get_data(as_text=True)
    assert "週次レポート" in page and "今週" in page and "前週" in page and "@page" in page and "A4" in page
    assert "<svg" in page  # charts are part of the printed page
    xlsx = client.get("/reports/weekly?format=xlsx&lang=ja")
    assert xlsx.status_code == 200 and xlsx.data[:2] == b"PK"
    data = client.get("/reports/weekly?format=json").get_json()
    assert data["timezone"] == "Asia/Tokyo" and data["tables"][0]["columns"][0] == "指標"
    assert client.get("/reports/weekly?to=nonsense").status_code == 400


def test_weekly_cli_formats_and_xlsx_sheets(loaded, env, tmp_path):
    from openpyxl import load_workbook
    text = CliRunner().invoke(main, ["report", "--weekly"], env=env)
    assert text.exit_code == 0, text.output
    assert "週次レポート" in text.output and "今週のまとめ" in text.output
    out = CliRunner().invoke(main, ["report", "--weekly", "--format", "json"], env=env)
    assert json.loads(out.output)["tables"][0]["name"] == "weekly_summary"
    csv_file = tmp_path / "w.csv"
    assert CliRunner().invoke(main, ["report", "--weekly", "--format", "csv", "--out", str(csv_file)], env=env).exit_code == 0
    assert csv_file.read_text(encoding="utf-8").startswith("\ufeff# 週次")
    book_file = tmp_path / "w.xlsx"
    made = CliRunner().invoke(main, ["report", "--weekly", "--format", "xlsx", "--out", str(book_file)], env=env)
    assert made.exit_code == 0, made.output
    book = load_workbook(book_file)
    assert book.sheetnames == ["まとめ", "日別", "ソース別", "ラベル別", "苦情トピック", "応答時間とSLA", "炎上・まとまり", "修正されたラベル"]
    summary = book["まとめ"]
    assert [c.value for c in summary[3]] == ["指標", "今週", "前週", "増減"]
    assert summary["A3"].font.bold and summary.freeze_panes == "A4"
    assert [c.value for c in book["応答時間とSLA"][3]][:3] == ["週", "優先度", "SLA目標"]
    assert summary.column_dimensions["A"].width > 10
    no_out = CliRunner().invoke(main, ["report", "--weekly", "--format", "xlsx"], env=env)
    assert no_out.exit_code != 0 and "--out" in no_out.output
