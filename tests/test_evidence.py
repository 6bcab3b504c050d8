"""Evidence and qualification reasons: said once in English (stored), rendered in Japanese
through the same template; every line the analysis writes for the team's demo feed has one."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from connector import evidence
from connector.analysis import analyse
from connector.models import Post
from connector.qualify import Qualifier
from connector.watch import load_watch
from tests.conftest import login, post_dict

DEMO = Path(__file__).resolve().parents[1] / "connector" / "demo"
#: A lexicon word with its weight reads the same in both languages: 「最悪 (-0.9)」, 「勘弁 → -0.7」.
WORD_LINE = re.compile(r"\S.*? (\([+-][\d.]+\)|→ [+-][\d.]+)\Z")
#: English template words that must never be left in a Japanese line.
ENGLISH = re.compile(r"\b(cue|followers|reach|engagement|velocity|escalation|score|sentiment|matched|excluded|"
                     r"brand|negated|contrast|weighted|lexicon|rules say|weighed most|default|rule|spam|repost|"
                     r"follow-up|intensified|conclusion|sum|question mark|praise lowers)\b")


def _demo_lines() -> list[str]:
    watch = load_watch(DEMO / "watch.toml")
    qualifier = Qualifier(watch)
    lines: list[str] = []
    for raw in (DEMO / "feed.jsonl").read_text(encoding="utf-8").splitlines():
        if not raw.strip():
            continue
        post = Post.model_validate(json.loads(raw))
        decision = qualifier.decide(post)
        lines += decision.reasons
        if decision.qualified:
            for label in analyse(post, watch.priority).labels().values():
                lines += [e.strip() for e in label.evidence]
    return lines


def test_every_demo_evidence_line_and_reason_has_a_template():
    lines = _demo_lines()
    assert len(lines) > 500
    unknown = sorted({line for line in lines if evidence.parse(line) is None and not WORD_LINE.match(line)})
    assert unknown == []
    for line in lines:
        ja = evidence.render(line, "ja")
        if evidence.parse(line) is not None:
            params = " ".join(evidence.parse(line)[1].values())
            leftovers = [w for w in ENGLISH.findall(ja) if w not in params]
            assert not leftovers, (line, ja)
        assert evidence.render(line, "en") == line  # English is the stored line


@pytest.mark.parametrize("line, ja", [
    ("brand ソラモバイル: matched keyword ソラモバ", "ブランド ソラモバイル: キーワード「ソラモバ」に一致"),
    ("excluded: looks like spam (4 links)", "除外: スパムの疑い（リンク 4 件）"),
    ("followers 68,200 → reach high (+0.28)", "フォロワー 68,200 人 → 到達範囲 大（+0.28）"),
    ("score 0.83; negative with escalation word 消費者センター → critical",
     "スコア 0.83; ネガティブでエスカレーション語 消費者センター → 重大"),
    ("rule 2: risk=high, sentiment=negative → urgent", "ルール 2: 拡散リスク=高, 感情=ネガティブ → 緊急"),
    ("  report cue 障害(?<!視覚障害)(?!者) (+1.3)", "  報告の手がかり「障害」（+1.3）"),
    ("  no intent reached 0.5 (best praise 0.29): other", "  0.5 に達した意図なし（最高は称賛 0.29）: その他"),
    ("weighed most: cue:intent=report (+1.77), sentiment P(negative) (+0.71), word 「,」 (+0.29)",
     "最も効いた特徴: 手がかり:意図=報告 (+1.77), 感情 P(ネガティブ) (+0.71), 語「,」 (+0.29)"),
    ("near-duplicate of x:1870000000000001 (0.83)", "x:1870000000000001 とほぼ同じ文面（類似度 0.83）"),
    ("  最悪 (-0.9)", "  最悪 (-0.9)"),  # a lexicon word: the same in both languages
    ("something new the analysis may say one day", "something new the analysis may say one day"),
])
def test_render_in_japanese(line, ja):
    assert evidence.render(line, "ja") == ja


def test_producers_say_lines_through_the_templates():
    from connector.analysis.risk import risk_level
    level, why = risk_level(negative=True, report=False, followers=50_000, spread=0, strong_escalation=[], safety=[])
    assert evidence.parse(why) == ("why_large", {"followers": "50,000", "limit": "10,000"})
    assert evidence.say("spam_tags", n=6) == "excluded: looks like spam (6 hashtags)"


def test_post_page_and_qualification_log_speak_japanese(app_factory):
    app = app_factory()
    svc = app.extensions["yorisoi"]
    kept = svc.pipeline.ingest_raw(post_dict(id="ev1", text="ソラモバイル、駅で全然繋がらない。最悪",
                                             author={"id": "e1", "followers": 68_200}), "test")
    dropped = svc.pipeline.ingest_raw(post_dict(id="ev2", text="今日はいい天気"), "test")
    svc.pipeline.drain(max_wait=5)
    client = login(app.test_client(), app)
    full = client.get(f"/posts/{kept.key}?lang=ja").get_data(as_text=True)
    # The helpdesk's copy of the note (bilingual, shown as the helpdesk has it) comes after the analysis.
    page = full.split("ヘルプデスクのチケット")[0] + full.split("<h2>" + "プロフィール")[-1]
    assert "（+0.28）  (followers 68,200 → reach high (+0.28))" in full  # the note: Japanese, then the stored line
    assert "フォロワー 68,200 人 → 到達範囲 大" in page and "に一致" in page and "ルール" in page
    assert "reach high" not in page and "matched keyword" not in page
    english = client.get(f"/posts/{kept.key}?lang=en").get_data(as_text=True)
    assert "followers 68,200 → reach high" in english and "matched keyword" in english
    log = client.get("/decisions?lang=ja").get_data(as_text=True)
    assert "ブランドのキーワード・ハッシュタグ・メンションのどれにも一致しません" in log
    assert "no brand keyword" not in log
    assert dropped.status == "dropped"
    csv = client.get("/export/dropped_reasons.csv?lang=ja")
    assert csv.mimetype == "text/csv" and "no brand keyword" not in csv.get_data(as_text=True)
    assert "どれにも一致しません" in csv.get_data(as_text=True)
    from connector.reports import Column, cell_text
    status = Column("status", "状態", "Status", "status")
    assert [cell_text(status, s, "ja") for s in ("pending", "failed", "done", "prepared")] == \
        ["送信待ち", "失敗", "送信済み", "返信の準備済み（未送信）"]
    assert cell_text(status, "done", "en") == "delivered"


def test_cli_summaries_are_japanese_then_english(env, tmp_path):
    from click.testing import CliRunner

    from connector.cli import main
    feed = tmp_path / "posts.jsonl"
    feed.write_text(json.dumps(post_dict(id="cli1", text="ソラモバイル、駅で全然繋がらない。最悪")) + "\n"
                    + json.dumps(post_dict(id="cli2", text="今日はいい天気")) + "\n{broken\n", encoding="utf-8")
    result = CliRunner(env=env).invoke(main, ["replay", str(feed)])
    ja, en = result.output.splitlines()[0].split(" / ")
    assert ja.startswith("読み込み 3 · 対象 1 · チケット作成 1") and "対象外 1 · 不正な行 1" in ja
    assert en.startswith("read 3 · qualified 1 · tickets created 1")
    deliver = CliRunner(env=env).invoke(main, ["deliver", "--retry-failed"])
    assert deliver.exit_code == 0 and "送信キューに戻しました / requeued 0" in deliver.output
    assert "チケット作成 0 · 追記 0" in deliver.output and "tickets created 0" in deliver.output
