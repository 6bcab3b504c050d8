"""A small slice of the team's corpus (corpus/), as a corpus folder, for fast training tests."""
from __future__ import annotations

import json
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[1] / "corpus"


def small_corpus(tmp_path: Path, n: int = 240) -> Path:
    """The first n labelled posts of the corpus (by id), with their posts."""
    folder = tmp_path / "corpus"
    folder.mkdir(exist_ok=True)
    lines = (CORPUS / "labels.tsv").read_text(encoding="utf-8").splitlines()
    keep = lines[:1] + sorted(lines[1:])[:n]
    ids = {line.split("\t", 1)[0] for line in keep[1:]}
    posts = [line for line in (CORPUS / "posts.jsonl").read_text(encoding="utf-8").splitlines()
             if json.loads(line)["id"] in ids]
    (folder / "labels.tsv").write_text("\n".join(keep) + "\n", encoding="utf-8")
    (folder / "posts.jsonl").write_text("\n".join(posts) + "\n", encoding="utf-8")
    return folder
