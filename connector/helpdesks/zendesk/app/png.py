"""A tiny PNG writer (stdlib zlib only) for the Zendesk app's logos.

Zendesk requires `assets/logo.png` and `assets/logo-small.png` in every app package
(https://developer.zendesk.com/documentation/apps/getting-started/setting-up-new-apps/ "File
requirements"; the marketplace asks for 320×320 and 128×128). Generating them keeps binary
files out of the repository and the logo in the brand colour of the sidebar (#2f5d50).
"""
from __future__ import annotations

import struct
import zlib

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: The sidebar header's green and the page's paper white (extension/render.js CSS).
GREEN = (0x2F, 0x5D, 0x50)
PAPER = (0xFB, 0xFA, 0xF7)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png(width: int, height: int, pixel) -> bytes:
    """An 8-bit RGB PNG whose pixel (x, y) is `pixel(x, y)` → (r, g, b)."""
    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter type 0 (None) for every scanline
        for x in range(width):
            rows.extend(bytes(pixel(x, y)))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8 bits, colour type 2 (RGB)
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(bytes(rows), 9)) + _chunk(b"IEND", b"")


def logo(size: int) -> bytes:
    """Yorisoi's mark: two overlapping discs (寄り添い, "standing close") on a green square."""
    r = size * 0.22
    centres = ((size * 0.40, size * 0.5), (size * 0.60, size * 0.5))

    def pixel(x: int, y: int) -> tuple[int, int, int]:
        inside = sum((x + 0.5 - cx) ** 2 + (y + 0.5 - cy) ** 2 <= r * r for cx, cy in centres)
        return PAPER if inside else GREEN
    return png(size, size, pixel)


def read_png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR; ValueError for anything that is not a PNG."""
    if not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        raise ValueError("not a PNG file")
    width, height = struct.unpack(">II", data[16:24])
    return width, height
