"""Real CIDv1 strings for the Bluesky fakes and fixtures, and a strict parser for the tests.

A CIDv1 as the AT Protocol uses it: multibase `b` (base32, lower case, no padding) of
<varint version 1><varint codec><multihash: 0x12 sha2-256, 0x20 length, 32-byte digest>.
Records are dag-cbor (0x71: `bafyrei…`), blobs raw (0x55: `bafkrei…`). The digest is taken over
whatever bytes the caller gives (not a real dag-cbor encoding of the record): the string is
still a valid CID, which is what a PDS checks before it accepts a strong ref.
"""
from __future__ import annotations

import base64
import hashlib
import re

DAG_CBOR = 0x71
RAW = 0x55
SHA2_256 = 0x12
_BASE32 = re.compile(r"b[a-z2-7]+")


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(data):
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    raise ValueError("truncated varint")


def cid_for(data: bytes | str, codec: int = DAG_CBOR) -> str:
    """The CIDv1 (base32) of sha2-256(data) with the given codec."""
    raw = data.encode() if isinstance(data, str) else data
    digest = hashlib.sha256(raw).digest()
    binary = _varint(1) + _varint(codec) + _varint(SHA2_256) + _varint(len(digest)) + digest
    return "b" + base64.b32encode(binary).decode("ascii").lower().rstrip("=")


def parse_cid(cid: str) -> tuple[int, int, int, bytes]:
    """(version, codec, hash code, digest) of a base32 CIDv1; ValueError if it is not one."""
    if not isinstance(cid, str) or not _BASE32.fullmatch(cid):
        raise ValueError(f"not a base32 (multibase 'b') CID: {cid!r}")
    body = cid[1:].upper()
    try:
        binary = base64.b32decode(body + "=" * (-len(body) % 8))
    except ValueError as exc:
        raise ValueError(f"bad base32 in {cid!r}: {exc}") from None
    version, pos = _read_varint(binary, 0)
    codec, pos = _read_varint(binary, pos)
    hash_code, pos = _read_varint(binary, pos)
    length, pos = _read_varint(binary, pos)
    digest = binary[pos:]
    if version != 1:
        raise ValueError(f"{cid!r}: CID version {version}, not 1")
    if hash_code != SHA2_256 or length != 32 or len(digest) != 32:
        raise ValueError(f"{cid!r}: multihash is not a 32-byte sha2-256 (code {hash_code:#x}, {len(digest)} bytes)")
    if "b" + base64.b32encode(binary).decode("ascii").lower().rstrip("=") != cid:
        raise ValueError(f"{cid!r}: not the canonical encoding")
    return version, codec, hash_code, digest
