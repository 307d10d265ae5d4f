"""Cheap image checks on member bytes: signature and structure of JPEG and PNG, no decoder.

Pillow would verify more, but it adds ~12 MB to every function package (the 10 MB target), so the
ingest checks what a corrupt or disguised file gets wrong: the signature, JPEG start/end markers,
and PNG's IHDR chunk (with its CRC) and IEND trailer. Training decodes every image anyway.
"""

from __future__ import annotations

import struct
import zlib

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_START = b"\xff\xd8\xff"
JPEG_END = b"\xff\xd9"


def sniff_content_type(data: bytes) -> str | None:
    """ "image/jpeg", "image/png", or None when the bytes are neither."""
    if data.startswith(JPEG_START):
        return "image/jpeg"
    if data.startswith(PNG_SIGNATURE):
        return "image/png"
    return None


def image_problem(data: bytes) -> str | None:
    """Why these bytes are not a usable JPEG/PNG image, or None when they look like one."""
    content_type = sniff_content_type(data)
    if content_type == "image/jpeg":
        # Some writers pad after the EOI marker; accept an end marker near the end.
        if JPEG_END not in data[-64:]:
            return "truncated JPEG (no end-of-image marker)"
        return None
    if content_type == "image/png":
        return _png_problem(data)
    return "not a JPEG or PNG image (unknown signature)"


def _png_problem(data: bytes) -> str | None:
    header = data[8 : 8 + 25]
    if len(header) < 25:
        return "truncated PNG header"
    length, chunk_type = struct.unpack(">I4s", header[:8])
    if chunk_type != b"IHDR" or length != 13:
        return "PNG does not start with an IHDR chunk"
    width, height = struct.unpack(">II", header[8:16])
    (crc,) = struct.unpack(">I", header[21:25])
    if zlib.crc32(header[4:21]) != crc:
        return "PNG header CRC mismatch"
    if width == 0 or height == 0:
        return "PNG with zero width or height"
    if b"IEND" not in data[-16:]:
        return "truncated PNG (no IEND chunk)"
    return None
