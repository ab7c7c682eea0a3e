"""Small real files of each accepted media type, made in code (no binary fixtures)."""

from __future__ import annotations

import io
import struct
import wave
import zipfile
import zlib

from PIL import Image


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def png(width: int = 2, height: int = 2, extra: int = 0) -> bytes:
    """A valid RGB PNG; `extra` random-looking bytes ride in a private chunk (to make it big)."""
    raw = b"".join(b"\x00" + b"\x10\x80\xf0" * width for _ in range(height))
    chunks = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    if extra:
        chunks += _png_chunk(b"prIv", bytes(i % 251 for i in range(extra)))
    chunks += _png_chunk(b"IDAT", zlib.compress(raw)) + _png_chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims `width` x `height` pixels, over one row of data."""
    return (b"\x89PNG\r\n\x1a\n"
            + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + _png_chunk(b"IDAT", zlib.compress(b"\x00" * (1 + 3 * width)))
            + _png_chunk(b"IEND", b""))


def jpeg(width: int = 2, height: int = 2) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (16, 128, 240)).save(out, "JPEG")
    return out.getvalue()


def gif() -> bytes:
    return (b"GIF89a" + struct.pack("<HHBBB", 1, 1, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
            + b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00" + b"\x3b")


def webp() -> bytes:
    vp8l = b"\x2f\x00\x00\x00\x00\x88\x88\x08"
    chunk = b"VP8L" + struct.pack("<I", len(vp8l)) + vp8l
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


SVG = (b'<?xml version="1.0" encoding="UTF-8"?>\n<!-- a dot -->\n'
       b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
       b'<circle cx="5" cy="5" r="4" fill="teal"/></svg>\n')
SVG_WITH_SCRIPT = (b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script>'
                   b'<rect width="5" height="5"/></svg>')
SVG_WITH_HANDLER = b'<svg xmlns="http://www.w3.org/2000/svg"><rect onload="x()"/></svg>'


def mp3(frames: int = 4) -> bytes:
    id3 = b"ID3\x04\x00\x00\x00\x00\x00\x00"
    frame = b"\xff\xfb\x90\x64" + bytes(413)
    return id3 + frame * frames


def mp3_without_tag(frames: int = 4) -> bytes:
    return (b"\xff\xfb\x90\x64" + bytes(413)) * frames


def aac() -> bytes:
    return b"\xff\xf1\x50\x80\x02\x1f\xfc" + bytes(9)


def ogg_opus() -> bytes:
    head = b"OpusHead\x01\x02\x38\x01\x80\xbb\x00\x00\x00\x00\x00"
    page = (b"OggS\x00\x02" + bytes(8) + struct.pack("<I", 1) + struct.pack("<I", 0)
            + b"\x00\x00\x00\x00" + b"\x01" + bytes([len(head)]))
    return page + head


def wav(seconds: float = 0.05, rate: int = 8000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(int(seconds * rate) * 2))
    return out.getvalue()


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def m4a() -> bytes:
    return _box(b"ftyp", b"M4A \x00\x00\x02\x00M4A isommp42") + _box(b"mdat", bytes(64))


def mp4(size: int = 0) -> bytes:
    """An MP4 header (ftyp isom) and `size` payload bytes of a known pattern."""
    return (_box(b"ftyp", b"isom\x00\x00\x02\x00isomiso2avc1mp41")
            + _box(b"mdat", bytes(i % 256 for i in range(size))))


def _ebml(tag: bytes, payload: bytes) -> bytes:
    return tag + bytes([0x80 | len(payload)]) + payload


def webm() -> bytes:
    header = (_ebml(b"\x42\x86", b"\x01") + _ebml(b"\x42\xf7", b"\x01")
              + _ebml(b"\x42\xf2", b"\x04") + _ebml(b"\x42\xf3", b"\x08")
              + _ebml(b"\x42\x82", b"webm") + _ebml(b"\x42\x87", b"\x04")
              + _ebml(b"\x42\x85", b"\x02"))
    return b"\x1a\x45\xdf\xa3" + bytes([0x80 | len(header)]) + header + b"\x18\x53\x80\x67" + bytes(16)


def pdf(*pages: str, title: str | None = None) -> bytes:
    """A PDF with one page of text per argument, written by hand with a correct xref table."""
    texts = pages or ("Hello from a PDF.",)
    objects: list[bytes] = []
    count = len(texts)
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(count))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {count} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for i, text in enumerate(texts):
        lines = text.split("\n")
        ops = "BT /F1 12 Tf 72 720 Td 14 TL " + " ".join(
            "(" + line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ") Tj T*"
            for line in lines) + " ET"
        stream = ops.encode("latin-1")
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources "
                       f"<< /Font << /F1 3 0 R >> >> /Contents {5 + 2 * i} 0 R >>".encode())
        objects.append(b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream
                       + b"\nendstream")
    info = None
    if title:
        utf16 = ("\ufeff" + title).encode("utf-16-be").hex()  # any character, as PDFs write it
        objects.append(f"<< /Title <{utf16}> >>".encode())
        info = len(objects)
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(f"{n} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for off in offsets:
        out.write(f"{off:010d} 00000 n \n".encode())
    trailer = f"<< /Size {len(objects) + 1} /Root 1 0 R" + (f" /Info {info} 0 R" if info else "")
    out.write(f"trailer\n{trailer} >>\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()


def zip_of(files: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return out.getvalue()


def zip_with_symlink(name: str, target: str) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        info = zipfile.ZipInfo(name)
        info.create_system = 3
        info.external_attr = (0o120777 << 16)
        zf.writestr(info, target)
    return out.getvalue()


def zip_bomb(unpacked: int) -> bytes:
    """A zip whose one entry packs `unpacked` zero bytes into very little."""
    return zip_of({"bomb.md": bytes(unpacked)})


MARKDOWN = b"""---
title: Loops
estimated_minutes: 7
teaches: [loops]
---
# Loops

A `for` loop repeats.

## While

A `while` loop repeats until its condition is false.
"""
