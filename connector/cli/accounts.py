"""`yorisoi` commands of the accounts: token, user."""
from __future__ import annotations

import json
import sys

import click

from connector.cli import _app, _services, main


@main.group()
def token() -> None:
    """Per-agent API tokens for the sidebar browser extension (/api/v1/).

    Each agent gets their own token: the connector then knows who checked a draft or corrected
    a label, and a lost laptop means revoking one token. Tokens are stored hashed (SHA-256).
    """


@token.command("create")
@click.option("--agent", required=True, help="The agent's name as customers see it (e.g. 佐藤).")
def token_create(agent: str) -> None:
    """Create a token for AGENT and print it once (it cannot be shown again)."""
    from connector.agents import create_token
    try:
        token_id, secret = create_token(_services(_app()).store, agent)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"token #{token_id} for {agent.strip()} — 一度だけ表示します / shown once, paste it into the extension's options:")
    click.echo(secret)


@token.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
def token_list(as_json: bool) -> None:
    """List tokens (id, agent, how made, created, last used, revoked); never the tokens themselves.

    How made: `cli` (yorisoi token create), `signin` (the extension's 「Yorisoi にログイン」 with a
    dashboard account) or `sso` (the same behind the reverse proxy's YORISOI_SSO_HEADER)."""
    rows = _services(_app()).store.accounts.list_agent_tokens()
    records = [{"id": r["id"], "agent": r["agent"], "created_at": r["created_at"].isoformat(),
                "last_used_at": r["last_used_at"].isoformat() if r["last_used_at"] else None,
                "revoked_at": r["revoked_at"].isoformat() if r["revoked_at"] else None,
                "origin": r["origin"] or "cli"} for r in rows]
    if as_json:
        click.echo(json.dumps(records, ensure_ascii=False, indent=1))
        return
    if not records:
        click.echo("no tokens yet (yorisoi token create --agent NAME)")
    for rec in records:
        state = f"revoked {rec['revoked_at'][:16]}" if rec["revoked_at"] else "active"
        used = rec["last_used_at"][:16] if rec["last_used_at"] else "never"
        click.echo(f"#{rec['id']:>4}  {rec['agent']}  {rec['origin']:<6}  created {rec['created_at'][:16]}  last used {used}  {state}")


@token.command("revoke")
@click.argument("token_id", type=int)
def token_revoke(token_id: int) -> None:
    """Revoke token TOKEN_ID (see `yorisoi token list`); the sidebar using it gets 401 at once."""
    if not _services(_app()).store.accounts.revoke_agent_token(token_id):
        raise click.ClickException(f"no active token #{token_id} (see yorisoi token list)")
    click.echo(f"token #{token_id} revoked")



@main.group()
def user() -> None:
    """Dashboard accounts for supervisors (the dashboard needs a login)."""


@user.command("create")
@click.argument("name")
@click.option("--generate", is_flag=True, help="Generate a random password and print it once.")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin (for scripts).")
@click.option("--reset", is_flag=True, help="Set a new password for an existing account.")
def user_create(name: str, generate: bool, password_stdin: bool, reset: bool) -> None:
    """Create a supervisor account NAME; prompts for the password unless told otherwise.

    Passwords are stored as salted scrypt hashes; a generated one is printed once, here only.
    """
    from connector.web.auth import check_password_strength, generate_password, hash_password
    name = name.strip()
    if not name or len(name) > 100:
        raise click.ClickException("NAME must be 1 to 100 characters")
    if generate:
        password = generate_password()
    elif password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("password / パスワード", hide_input=True, confirmation_prompt=True)
    problem = check_password_strength(password)
    if problem:
        raise click.ClickException(problem)
    svc = _services(_app())
    if not svc.store.accounts.create_user(name, hash_password(password), replace=reset):
        raise click.ClickException(f"account {name!r} exists already (use --reset to set a new password)")
    click.echo(f"{'password reset for' if reset else 'created'} {name}" +
               (f"  password {password}" if generate else ""))


@user.command("delete")
@click.argument("name")
def user_delete(name: str) -> None:
    """Delete the supervisor account NAME; its sessions end at their next request."""
    if not _services(_app()).store.accounts.delete_user(name.strip()):
        raise click.ClickException(f"no account {name!r}")
    click.echo(f"deleted {name.strip()}")


@user.command("list")
def user_list() -> None:
    """List the supervisor accounts and when they last signed in."""
    for row in _services(_app()).store.accounts.list_users():
        last = row["last_login_at"].isoformat(timespec="seconds") if row["last_login_at"] else "never"
        click.echo(f"{row['name']}\tcreated {row['created_at'].isoformat(timespec='seconds')}\tlast sign-in {last}")
