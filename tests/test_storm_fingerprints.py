"""The MinHash fingerprints of storm grouping (connector/storms.py) were made cheaper (issue 17):
a translate table for clean_text, cached 3-gram hashes, in-place arithmetic, one tobytes per
signature. Band keys are stored (storm_bands) and compared across instances and restarts, so
they must stay exactly what the first implementation, kept here as the reference, computed."""
from __future__ import annotations

import json
import random
import unicodedata
import zlib

import numpy as np

from benchmarks.storm import BARE_ECHOES, generate
from connector.config import DEMO_FEED
from connector.storms import (
    _A,
    _B,
    _MENTION,
    _PRIME,
    _URL,
    BANDS,
    NUM_HASHES,
    ROWS,
    _ShingleHashes,
    band_keys,
    clean_text,
    shingles,
    signature,
)
from connector.textnorm import fold


def reference_clean_text(text: str, drop: tuple[str, ...] = ()) -> str:
    text = _MENTION.sub(" ", _URL.sub(" ", text))
    text = fold(unicodedata.normalize("NFKC", text))
    for word in drop:
        if word:
            text = text.replace(word, " ")
    return "".join(ch for ch in text if unicodedata.category(ch)[0] in "LN")


def reference_shingles(text: str, n: int = 3) -> frozenset[str]:
    if len(text) <= n:
        return frozenset([text]) if text else frozenset()
    return frozenset(text[i:i + n] for i in range(len(text) - n + 1))


def reference_signature(sh: frozenset[str]) -> np.ndarray:
    hashes = np.fromiter((zlib.crc32(s.encode("utf-8")) for s in sh), dtype=np.uint64, count=len(sh))
    if hashes.size == 0:
        return np.zeros(NUM_HASHES, dtype=np.uint64)
    return ((_A[:, None] * hashes[None, :] + _B[:, None]) % _PRIME).min(axis=1)


def reference_band_keys(sig: np.ndarray) -> list[bytes]:
    return [sig[i * ROWS:(i + 1) * ROWS].tobytes() + bytes([i]) for i in range(BANDS)]


def _texts() -> list[str]:
    """The demo feed, the storm benchmark's posts and echoes, and random text over the scripts
    and marks posts carry (kana of both widths, letters of both widths, digits, emoji,
    combining marks, punctuation, spaces, URLs and mentions)."""
    rng = random.Random(17)
    feed = [json.loads(line)["text"] for line in DEMO_FEED.read_text(encoding="utf-8").splitlines() if line.strip()]
    stormy = [text for _, _, text, _ in generate(300, 5)]
    alphabet = ("あいうえおかがきぎアイウエオカガｱｲｳｴｵｶﾞ漢字炎上圏外繋がらないＡＢＣａｂｃABCxyz0123４５６①②"
                "ⅠⅡ😀🙏👍\u3099\u309a\u0301\u200b！？、。・「」（）()!?#＃ 　\n\tＳｏｒａソラモバイルハルカ珈琲")
    generated = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 120))) +
                 rng.choice(["", " https://t.co/abc?x=1 ", " @sora_mobile ", " www.example.jp/x "]) for _ in range(500)]
    return [*feed, *stormy, *BARE_ECHOES, *generated, "", "あ", "ab", "abc", "abcd"]


def test_fingerprints_are_those_of_the_reference() -> None:
    drops = [(), ("そらもばいる", "sora"), ("はるかこーひー", "はるか珈琲", "")]
    for n, text in enumerate(_texts()):
        drop = drops[n % len(drops)]
        cleaned = clean_text(text, drop)
        assert cleaned == reference_clean_text(text, drop), text
        sh = shingles(cleaned)
        assert sh == reference_shingles(cleaned)
        sig = signature(sh)
        assert sig.dtype == np.uint64 and np.array_equal(sig, reference_signature(sh))
        assert band_keys(sig) == reference_band_keys(reference_signature(sh))


def test_shingle_hash_cache_is_bounded() -> None:
    hashes = _ShingleHashes(limit=3)
    for shingle in ("あいう", "いうえ", "うえお", "えおか", "あいう"):
        assert hashes[shingle] == zlib.crc32(shingle.encode("utf-8"))
        assert len(hashes) <= 3
