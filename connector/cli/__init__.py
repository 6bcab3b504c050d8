"""`yorisoi` commands. Thin: each one calls the same functions the web app uses.

They are registered on the Flask app (`flask --app connector replay …` works too) and exposed
as the `yorisoi` console script, which builds the app only when a command runs.

One module per command group, each adding its commands to `main` when imported (below):
pipeline (demo, serve, replay, deliver, tickets, reply), sources (poll, sync-status,
compliance), analysis (evaluate, train), accounts (user, token), extension (extension build/keygen), helpdesk (setup-sla,
channel-code), reports (report) and config (check-config, doctor). A new command goes into the
module of its group.
"""
from __future__ import annotations

from typing import Any

import click
from flask import Flask, current_app

from connector.config import ConfigError, env_groups
from connector.watch import WatchConfigError

#: Where the variables are documented; `check-config --help` says it too.
_CONFIG_WHERE = ("Every variable is declared once beside the code that reads it and listed, per integration, "
                 "in README.md → Configuration (tables generated from connector.config.env_groups()).")
_EPILOG = "Configuration (environment variables):\n\n" + "\n\n".join(
    f"[{title}] {name} (default: {default}) — {meaning}"
    for title, group in env_groups() for name, default, meaning in group) + "\n\n" + _CONFIG_WHERE


def _app() -> Flask:
    """The current Flask app under `flask …`, else one built from the environment."""
    try:
        return current_app._get_current_object()  # type: ignore[attr-defined]
    except RuntimeError:
        from connector import create_app
        try:
            return create_app()
        except (ConfigError, WatchConfigError) as exc:
            raise click.ClickException(str(exc)) from None


def _services(app: Flask):
    return app.extensions["yorisoi"]


def _one_instance(app: Flask) -> Any:
    """Hold the SQLite database's instance lock for a long-running command (serve, poll, demo)."""
    from connector.db.engine import InstanceLocked, instance_lock

    lock = instance_lock(_services(app).settings.database_url)
    try:
        lock.__enter__()
    except InstanceLocked as exc:
        raise click.ClickException(str(exc)) from None
    click.get_current_context().call_on_close(lambda: lock.__exit__(None, None, None))
    return lock


@click.group(epilog=_EPILOG, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="yorisoi")
def main() -> None:
    """Yorisoi (寄り添い): public posts about your brand become tickets in your helpdesk.

    Watches posts, keeps the ones that qualify, analyses them in Japanese and English, and
    delivers each one as exactly one ticket through a crash-safe outbox.
    """


def register(app: Flask) -> None:
    """Make every `yorisoi` command available as `flask --app connector <command>` too."""
    for command in main.commands.values():
        app.cli.add_command(command)


# The command groups: importing each adds its commands to `main` (they import `main` from here).
from connector.cli import accounts, analysis, config, extension, helpdesk, pipeline, reports, sources  # noqa: E402,F401
