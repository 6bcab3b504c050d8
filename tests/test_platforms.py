"""The network registry: one `PlatformInfo` per sources/<network>.py, read everywhere else."""
from __future__ import annotations

import ast
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import connector.sources as sources
from connector.sources import PLATFORMS, PlatformInfo

ROOT = Path(__file__).resolve().parents[1]


def test_every_network_module_with_info_is_registered():
    declared = {}
    for module in pkgutil.iter_modules(sources.__path__):
        info = getattr(importlib.import_module(f"connector.sources.{module.name}"), "INFO", None)
        if isinstance(info, PlatformInfo):
            declared[info.name] = info
    assert declared == PLATFORMS
    assert list(PLATFORMS) == ["x", "mastodon", "bluesky", "rss", "webhook"]


def test_descriptors_are_consistent():
    for name, info in PLATFORMS.items():
        assert info.name == name and info.display_ja and info.display_en
        assert (info.reply_limit is None) == (info.reply_count is None)
        if info.reply_intent or info.compliance:
            assert info.replies, name
        for var in info.env:
            assert var.owner == f"connector.sources.{name}" and var.meaning


def test_descriptor_module_is_light():
    """models.py validates platforms against the registry; the descriptor type itself must not
    import anything of ours but envvars, so reading it can never close a cycle."""
    tree = ast.parse((ROOT / "connector" / "sources" / "platform.py").read_text(encoding="utf-8"))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= {"__future__", "dataclasses", "connector.envvars"}


def test_models_import_first_without_cycle():
    code = "import connector.models as m; from connector.sources import PLATFORMS; print(len(PLATFORMS))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "5"


def test_consumers_read_the_descriptors():
    from connector.compliance import COMPLIANCE_PLATFORMS
    from connector.draft_check import LIMITS
    from connector.helpdesks.zendesk.channel.resources import REPLYABLE_PLATFORMS
    from connector.sources import DEFAULT_INTERVALS
    assert REPLYABLE_PLATFORMS == {"x", "mastodon", "bluesky"}
    assert COMPLIANCE_PLATFORMS == ("x", "mastodon", "bluesky")
    assert {k: v[1] for k, v in LIMITS.items()} == {"x": 280, "mastodon": 500, "bluesky": 300}
    assert DEFAULT_INTERVALS == {"x": 300.0, "mastodon": 120.0, "bluesky": 120.0, "rss": 900.0}
