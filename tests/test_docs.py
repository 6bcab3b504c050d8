"""The setup guides stay true: every `yorisoi …` command they show exists, with the options they use.

The README's quick start points to one page per setup (docs/zendesk.md, docs/freshdesk.md,
docs/networks.md, docs/extension.md, docs/production.md). A renamed command or option would
leave an admin typing something that no longer works, so each command line in them (fenced
blocks and inline code) is resolved against the real click group.
"""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from connector.cli import main

ROOT = Path(__file__).resolve().parents[1]
GUIDES = ["README.md", "docs/zendesk.md", "docs/freshdesk.md", "docs/networks.md",
          "docs/extension.md", "docs/production.md"]

#: `yorisoi` then a command word, then its words up to a shell operator, a comment, a closing
#: backtick or the end of the line (not a database or package that happens to be named yorisoi).
COMMAND = re.compile(r"(?:^|[\s`(/])yorisoi((?:[ \t]+[a-z][a-z-]*)(?:[ \t]+[^\s`|;&>)#]+)*)", re.MULTILINE)


def command_lines(text: str) -> list[list[str]]:
    found = []
    for match in COMMAND.finditer(text):
        words = match.group(1).strip()
        if not words:
            continue
        try:
            argv = shlex.split(words)
        except ValueError:  # an unmatched quote in prose: take the words as they are
            argv = words.split()
        found.append(argv)
    return found


def resolve(argv: list[str]) -> tuple[click.Command, list[str]]:
    """The command `argv` names and the options it uses; fails when a word names no command."""
    command: click.Command = main
    rest = list(argv)
    while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        word = rest[0]
        if word.isupper() or "…" in word or word in ("COMMAND", "..."):
            break  # a placeholder in prose ("yorisoi COMMAND --help")
        sub = command.get_command(click.Context(command), word)
        assert sub is not None, f"`yorisoi {' '.join(argv)}`: no command {word!r}"
        command, rest = sub, rest[1:]
    options = [w.split("=", 1)[0] for w in rest if w.startswith("--") and len(w) > 2]
    return command, options


@pytest.mark.parametrize("guide", GUIDES)
def test_every_command_in_the_guide_exists(guide):
    path = ROOT / guide
    assert path.exists(), f"{guide} is linked from the README"
    lines = command_lines(path.read_text(encoding="utf-8"))
    if guide in ("README.md", "docs/zendesk.md", "docs/networks.md", "docs/production.md"):
        assert lines, f"{guide} shows no yorisoi command: the regular expression broke"
    for argv in lines:
        command, options = resolve(argv)
        known = {opt for param in command.params for opt in getattr(param, "opts", [])
                 + getattr(param, "secondary_opts", [])} | {"--help"}
        unknown = [opt for opt in options if opt not in known]
        assert not unknown, f"{guide}: `yorisoi {' '.join(argv)}` uses {unknown}, which {command.name} does not have"


def test_the_readme_links_every_guide():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for guide in GUIDES[1:]:
        assert f"({guide})" in readme, guide


def test_a_wrong_command_is_caught():
    """The check itself can fail: a renamed command and an unknown option are found."""
    with pytest.raises(AssertionError, match="no command"):
        resolve(["sync-statuses"])
    command, options = resolve(["report", "--weekly", "--fromat", "xlsx"])
    known = {opt for param in command.params for opt in getattr(param, "opts", [])}
    assert "--weekly" in known and "--fromat" not in known
    assert command_lines("run `yorisoi user create alice --generate` then") == [["user", "create", "alice", "--generate"]]
