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


def image_problem(data: bytes, max_pixels: int | None = None) -> str | None:
    """Why these bytes are not a usable JPEG/PNG image, or None when they look like one.

    With ``max_pixels``, an image whose header declares more pixels is refused as well (training
    and serving refuse it too: a 20000x20000 PNG is a few hundred kB but 1.2 GB decoded).
    """
    content_type = sniff_content_type(data)
    if content_type == "image/jpeg":
        # Some writers pad after the EOI marker; accept an end marker near the end.
        if JPEG_END not in data[-64:]:
            return "truncated JPEG (no end-of-image marker)"
    elif content_type == "image/png":
        problem = _png_problem(data)
        if problem:
            return problem
    else:
        return "not a JPEG or PNG image (unknown signature)"
    if max_pixels is not None:
        size = image_size(data)
        if size is None:
            return "image header without dimensions"
        width, height = size
        if width * height > max_pixels:
            return f"image is {width}x{height} = {width * height} pixels, the limit is {max_pixels}"
    return None


# Start-of-frame markers carry the dimensions; C4 (DHT), C8 (JPG) and CC (DAC) share the range.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE = frozenset(range(0xD0, 0xD8)) | {0x01}  # RSTn, TEM: no length field


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's start-of-frame or a PNG's IHDR, without decoding; None if absent."""
    if data.startswith(PNG_SIGNATURE) and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    if not data.startswith(JPEG_START):
        return None
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in _JPEG_STANDALONE:
            position += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no frame header before it
            return None
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        if marker in _JPEG_SOF:
            if position + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[position + 5 : position + 9])
            return width, height
        position += 2 + length
    return None


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
