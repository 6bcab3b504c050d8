"""The README stays true: its configuration table and commands match the code."""
from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from connector.cli import main
from connector.config import ENV_VARS, all_env_vars, env_table_markdown

ROOT = Path(__file__).resolve().parents[1]


def test_configuration_table_matches_the_code():
    assert env_table_markdown() in (ROOT / "README.md").read_text(encoding="utf-8")


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    command = "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/pytest"
    assert command in readme
    assert command in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_help_lists_every_command_and_variable():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in ("demo", "serve", "replay", "tickets", "reply", "setup-sla", "deliver", "check-config"):
        assert command in result.output
    for name, _default, _meaning in ENV_VARS:
        assert name in result.output
    for var in all_env_vars():  # every integration's variables too
        assert var.name in result.output
    where = CliRunner().invoke(main, ["check-config", "--help"])
    assert where.exit_code == 0 and "README.md" in where.output and "Configuration" in where.output


def test_configuration_registry_is_complete():
    """Every variable the code reads is declared once (name, default, meaning, owner)."""
    import re
    declared = [var.name for var in all_env_vars()]
    assert len(declared) == len(set(declared))
    read = set()
    for path in (ROOT / "connector").rglob("*.py"):
        read |= set(re.findall(r'"((?:YORISOI|X|MASTODON|BLUESKY|ZENDESK|FRESHDESK|RSS)_[A-Z_]+)"',
                               path.read_text(encoding="utf-8")))
    assert read - set(declared) == set()
    for var in all_env_vars():
        assert var.meaning and var.owner.startswith("connector"), var


def test_bad_settings_name_the_variable():
    import pytest

    from connector.config import ConfigError, Settings
    for env, words in [({"YORISOI_PORT": "http"}, "YORISOI_PORT='http' is not a whole number"),
                       ({"YORISOI_PORT": "70000"}, "YORISOI_PORT=70000 is out of range"),
                       ({"YORISOI_DELIVERY_INTERVAL": "0"}, "YORISOI_DELIVERY_INTERVAL=0.0 is out of range"),
                       ({"YORISOI_HELPDESK": "kintone"}, "YORISOI_HELPDESK='kintone' is not supported")]:
        with pytest.raises(ConfigError, match=words.replace("(", r"\(")):
            Settings.from_env(env)
    settings = Settings.from_env({"YORISOI_WEBHOOK_SECRET": "s3cret-value-0123456789", "YORISOI_DATABASE": "/tmp/x.db"})
    assert settings.database_url == "sqlite:////tmp/x.db"
    assert "s3cret-value-0123456789" not in repr(settings)


def test_sla_minutes_parsing():
    import pytest

    from connector.helpdesks.base import parse_sla_minutes
    assert parse_sla_minutes(None) == {"urgent": 30, "high": 60, "normal": 240, "low": 1440}
    assert parse_sla_minutes("urgent=15, low=600")["urgent"] == 15
    for bad in ("urgent=0", "soon=5", "high=one hour"):
        with pytest.raises(ValueError, match="YORISOI_SLA_MINUTES"):
            parse_sla_minutes(bad)


def test_setup_sla_on_local_helpdesk_says_what_to_do(env):
    result = CliRunner().invoke(main, ["setup-sla", "--dry-run"], env=env)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("local: manual") and "YORISOI_HELPDESK=zendesk" in result.output


def test_weak_shared_secrets_are_refused_at_start_up(env, app_factory):
    """A 1-character YORISOI_WEBHOOK_SECRET (or session key, or helpdesk webhook secret) was
    accepted: it is guessed in a few hundred requests. Like YORISOI_CHANNEL_SECRET, every shared
    secret needs 16+ characters, refused at start-up naming the variable (issue 16 #19)."""
    import pytest

    from connector.config import ConfigError, Settings
    from connector.helpdesks.zendesk.client import ZendeskConfig
    for name in ("YORISOI_WEBHOOK_SECRET", "YORISOI_SECRET_KEY"):
        for weak in ("x", "fifteen-chars-x"):
            with pytest.raises(ConfigError, match=name) as caught:
                Settings.from_env({name: weak})
            assert weak not in str(caught.value) and "16" in str(caught.value)
            with pytest.raises(ConfigError, match=name):
                app_factory(**{name: weak})
        assert getattr(Settings.from_env({name: "sixteen-chars-ok"}),
                       "webhook_secret" if name == "YORISOI_WEBHOOK_SECRET" else "secret_key") == "sixteen-chars-ok"
    zendesk = {"ZENDESK_URL": "https://acme.zendesk.com", "ZENDESK_EMAIL": "a@example.com", "ZENDESK_API_TOKEN": "tok"}
    with pytest.raises(ConfigError, match="ZENDESK_WEBHOOK_SECRET"):
        ZendeskConfig.from_env({**zendesk, "ZENDESK_WEBHOOK_SECRET": "z"})
    assert ZendeskConfig.from_env({**zendesk, "ZENDESK_WEBHOOK_SECRET": "z" * 16}).webhook_secret == "z" * 16
