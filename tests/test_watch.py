"""The watch file fails at start-up with the file, the key and what is wrong."""
from __future__ import annotations

from pathlib import Path

import pytest

from connector.config import DEMO_WATCH
from connector.watch import WatchConfigError, load_watch


def test_bundled_demo_watch_file_is_valid():
    watch = load_watch(DEMO_WATCH)
    assert "ソラモバイル" in watch.brand_names


@pytest.mark.parametrize("content, key, words", [
    ("", "brand", "at least one [[brand]]"),
    ("[[brand]]\nkeywords = ['x y']\n", "brand[0].name", "non-empty string"),
    ("[[brand]]\nname = 'A'\n", "brand[0]", "at least one of keywords"),
    ("[[brand]]\nname = 'A'\nkeywords = 'ソラ'\n", "brand[0].keywords", "list of non-empty strings"),
    ("[[brand]]\nname = 'A'\nkeywords = ['ソラ', 3]\n", "brand[0].keywords", "list of non-empty strings"),
    ("[[brand]]\nname = 'A'\nkeywords = ['a']\n", "brand[0].keywords", "too short"),
    ("[[brand]]\nname = 'A'\nkeywords = ['ソラ']\nlanguage = ['ja']\n", "brand[0].language", "unknown key"),
    ("[[brand]]\nname = 'A'\nkeywords = ['ソラ']\nlanguages = ['japanese']\n", "brand[0].languages", "not a language code"),
    ("[[brand]]\nname = 'A'\nkeywords = ['ソラ']\n[[brand]]\nname = 'A'\nkeywords = ['ハル']\n", "brand[1].name", "listed twice"),
    ("brands = 1\n", "brands", "unknown key"),
    ("[[brand]]\nname = 'A'\nkeywords = ['ソラ']\n[[priority]]\nwhen = { risk = 'huge' }\npriority = 'urgent'\n",
     "priority", "huge"),
])
def test_invalid_files_name_the_key(tmp_path: Path, content: str, key: str, words: str):
    path = tmp_path / "watch.toml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(WatchConfigError) as info:
        load_watch(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {key}"), message
    assert words in message


def test_bad_toml_and_missing_file(tmp_path: Path):
    path = tmp_path / "watch.toml"
    path.write_text("[[brand]\nname=", encoding="utf-8")
    with pytest.raises(WatchConfigError, match="not valid TOML"):
        load_watch(path)
    with pytest.raises(WatchConfigError, match="file not found"):
        load_watch(tmp_path / "nope.toml")


def test_cli_fails_at_start_up_naming_file_and_key(tmp_path: Path, env: dict[str, str]):
    from click.testing import CliRunner

    from connector.cli import main
    path = tmp_path / "watch.toml"
    path.write_text("[[brand]]\nname = 'ソラモバイル'\nkeywords = ['ソラモバイル']\nexclude_account = ['x']\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["check-config"], env={**env, "YORISOI_WATCH": str(path)})
    assert result.exit_code == 1
    assert f"Error: {path}: brand[0].exclude_account: unknown key" in result.output
    ok = CliRunner().invoke(main, ["check-config"], env=env)
    assert ok.exit_code == 0 and "ソラモバイル: 5 keywords" in ok.output and "source webhook: enabled" in ok.output


BRAND = "[[brand]]\nname = 'A'\nkeywords = ['ソラ']\n"


@pytest.mark.parametrize("reply, key, words", [
    ("[brand.reply]\nsignatur = 'x'\n", "brand[0].reply.signatur", "unknown key"),
    ("[brand.reply]\nsignature = 3\n", "brand[0].reply.signature", "must be a string"),
    ("[brand.reply]\nsignature = '{brand}です'\n", "brand[0].reply.signature", "must contain {agent}"),
    ("[brand.reply]\nsignature_en = '— {name}, A'\n", "brand[0].reply.signature_en", "unknown placeholder {name}"),
    ("[brand.reply]\navoid_words = '仕様です'\n", "brand[0].reply.avoid_words", "list of non-empty strings"),
    ("[brand.reply]\nfaq = 'x'\n", "brand[0].reply.faq", "array of tables"),
    ("[[brand.reply.faq]]\nurl = 'https://a.example/'\n", "brand[0].reply.faq[0].topic", "non-empty string"),
    ("[[brand.reply.faq]]\ntopic = '料金'\nurl = 'ftp://a.example/'\n", "brand[0].reply.faq[0].url", "http:// or https://"),
    ("[[brand.reply.faq]]\ntopic = '料金'\nurl = 'https://a.example/'\nkeyword = ['x']\n",
     "brand[0].reply.faq[0].keyword", "unknown key"),
    ("[[brand.reply.faq]]\ntopic = '料金'\nurl = 'https://a.example/'\nkeywords = [1]\n",
     "brand[0].reply.faq[0].keywords", "list of non-empty strings"),
])
def test_invalid_reply_guidelines_name_the_key(tmp_path: Path, reply: str, key: str, words: str):
    path = tmp_path / "watch.toml"
    path.write_text(BRAND + reply, encoding="utf-8")
    with pytest.raises(WatchConfigError) as info:
        load_watch(path)
    assert str(info.value).startswith(f"{path}: {key}"), str(info.value)
    assert words in str(info.value)


def test_reply_guidelines_are_read_per_brand(tmp_path: Path):
    path = tmp_path / "watch.toml"
    path.write_text(BRAND + """
[brand.reply]
signature = "{brand}の{agent}です"
avoid_words = ["仕様です"]
dm_handoff = "DMでお知らせください。"
[[brand.reply.faq]]
topic = "料金"
keywords = ["請求"]
url = "https://a.example/billing"
[[brand]]
name = "B"
keywords = ["ハルカ珈琲"]
""", encoding="utf-8")
    watch = load_watch(path)
    a, b = watch.brands
    assert a.reply.signature == "{brand}の{agent}です" and a.reply.avoid_words == ("仕様です",)
    assert [f.url for f in a.reply.faq_for("今月の請求が高い")] == ["https://a.example/billing"]
    assert a.reply.faq_for("駅で繋がらない") == ()
    assert b.reply.signature == "" and b.reply.faq == ()
    assert watch.brand("B") is b and watch.brand("nope") is None


def test_check_config_shows_the_reply_guidelines(env: dict[str, str]):
    from click.testing import CliRunner

    from connector.cli import main
    result = CliRunner().invoke(main, ["check-config"], env={**env, "YORISOI_WATCH": str(DEMO_WATCH)})
    assert result.exit_code == 0, result.output
    assert "reply guidelines: signature {brand}の{agent}です, 5 words to avoid, 3 help pages, DM hand-off set" in result.output


def test_demo_watch_file_documents_reply_guidelines():
    watch = load_watch(DEMO_WATCH)
    sora = watch.brand("ソラモバイル")
    assert sora is not None and "{agent}" in sora.reply.signature and sora.reply.dm_handoff and sora.reply.faq
