"""A grey RGB PNG written with the standard library only, for the eval check scripts."""

import struct
import zlib


def png(path, w, h):
    """A grey w×h RGB PNG."""
    raw = b"".join(b"\x00" + bytes([128, 128, 128]) * w for _ in range(h))

    def chunk(kind, data):
        c = struct.pack(">I", len(data)) + kind + data
        return c + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    data += chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(data)
