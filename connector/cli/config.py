"""`yorisoi` commands of the configuration: check-config, doctor."""
from __future__ import annotations

import sys

import click

from connector.cli import _CONFIG_WHERE, _app, _services, main


@main.command("check-config", epilog=_CONFIG_WHERE)
def check_config() -> None:
    """Validate the settings and the watch file, and show what will be watched.

    Settings come from environment variables: Yorisoi's own (YORISOI_*), each network's
    (X_*, MASTODON_*, BLUESKY_*) and each helpdesk's (ZENDESK_*, FRESHDESK_*).
    """
    svc = _services(_app())
    click.echo(f"watch file: {svc.watch.source}")
    for brand in svc.watch.brands:
        click.echo(f"  {brand.name}: {len(brand.keywords)} keywords, {len(brand.hashtags)} hashtags, "
                   f"{len(brand.mentions)} mentions, excluding {len(brand.exclude_accounts)} accounts "
                   f"and {len(brand.exclude_words)} words; languages {', '.join(brand.languages) or 'any'}")
        reply = brand.reply
        if reply.configured:
            click.echo(f"    reply guidelines: signature {reply.signature or '(default)'!s}, "
                       f"{len(reply.avoid_words)} words to avoid, {len(reply.faq)} help pages, "
                       f"DM hand-off {'set' if reply.dm_handoff or reply.dm_handoff_en else 'unset'}")
    click.echo(f"helpdesk: {svc.helpdesk.name}")
    click.echo(f"database: {svc.store.engine.url.render_as_string(hide_password=True)}")
    click.echo(f"source webhook: {'enabled' if svc.settings.webhook_secret else 'disabled (YORISOI_WEBHOOK_SECRET unset)'}")
    from connector.config import ConfigError
    from connector.weekly_mail import MailSettings
    try:
        mail = MailSettings.from_env(svc.settings.env)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if mail is None:
        click.echo("weekly report mail: off (YORISOI_SMTP_HOST unset)")
    else:
        when = (f"every {('mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun')[mail.schedule.weekday]} "
                f"{mail.schedule.at:%H:%M} JST" if mail.schedule else "only from cron (report --weekly --email)")
        click.echo(f"weekly report mail: {mail.host}:{mail.port} ({mail.security}) → {', '.join(mail.to)}; {when}")


@main.command()
def doctor() -> None:
    """Check the live configuration end to end (read-only), one line per check.

    Helpdesk credentials and plan features (SLA API, custom fields named in ZENDESK_FIELDS /
    FRESHDESK_FIELDS), each configured network's token (and which field naming X answers in),
    and YORISOI_PUBLIC_URL's /healthz. Exit code 1 when any check FAILs (warnings do not).
    """
    from connector import doctor as doctor_mod
    checks = doctor_mod.run()
    for check in checks:
        click.echo(check.line())
    failed = sum(c.status == doctor_mod.FAIL for c in checks)
    warned = sum(c.status == doctor_mod.WARN for c in checks)
    click.echo(f"{len(checks)} 件確認、失敗 {failed}、警告 {warned} / {len(checks)} checks, {failed} failed, {warned} warnings")
    if failed:
        sys.exit(1)
