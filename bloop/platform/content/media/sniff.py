"""What a file is, from its first bytes, for the types media accepts; and whether that agrees with
what the client claimed (its `Content-Type` and its file name's extension).

Only these types are accepted: PNG, JPEG, GIF, WebP, SVG (text, refused when it can run script or
load anything), MP3, AAC, Ogg (Opus or Vorbis), WAV, M4A, MP4, WebM, PDF, ZIP, Markdown, plain
text and WebVTT captions. Each is recognised by its own signature, so a file renamed `.png` is
still what its bytes say it is.
"""

from __future__ import annotations

import logging
import re
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from PIL import Image

from bloop.platform.content.media.model import MediaKind

log = logging.getLogger("bloop.content.media")
SNIFF_BYTES = 8192
"""How many leading bytes `sniff` needs to tell every accepted type apart."""


@dataclass(frozen=True)
class Sniffed:
    content_type: str
    kind: MediaKind
    label: str
    ext: str


class Unrecognised(ValueError):
    """The bytes are none of the accepted types."""


class Mismatch(ValueError):
    """The bytes are an accepted type, but not the one the client claimed."""


class UnsafeSvg(ValueError):
    """An SVG that could run script or load something from elsewhere."""


PNG = Sniffed("image/png", "image", "a PNG image", ".png")
JPEG = Sniffed("image/jpeg", "image", "a JPEG image", ".jpg")
GIF = Sniffed("image/gif", "image", "a GIF image", ".gif")
WEBP = Sniffed("image/webp", "image", "a WebP image", ".webp")
SVG = Sniffed("image/svg+xml", "image", "an SVG image", ".svg")
MP3 = Sniffed("audio/mpeg", "audio", "MP3 audio", ".mp3")
AAC = Sniffed("audio/aac", "audio", "AAC audio", ".aac")
OGG = Sniffed("audio/ogg", "audio", "Ogg audio", ".ogg")
WAV = Sniffed("audio/wav", "audio", "WAV audio", ".wav")
M4A = Sniffed("audio/mp4", "audio", "M4A audio", ".m4a")
MP4 = Sniffed("video/mp4", "video", "an MP4 video", ".mp4")
WEBM = Sniffed("video/webm", "video", "a WebM video", ".webm")
PDF = Sniffed("application/pdf", "pdf", "a PDF document", ".pdf")
ZIP = Sniffed("application/zip", "archive", "a ZIP archive", ".zip")
MARKDOWN = Sniffed("text/markdown", "text", "Markdown text", ".md")
TEXT = Sniffed("text/plain", "text", "plain text", ".txt")
VTT = Sniffed("text/vtt", "text", "WebVTT captions", ".vtt")

# What a client may call each type (its Content-Type, lower-case, without parameters).
_ALIASES: dict[Sniffed, frozenset[str]] = {
    PNG: frozenset({"image/png", "image/x-png"}),
    JPEG: frozenset({"image/jpeg", "image/jpg", "image/pjpeg"}),
    GIF: frozenset({"image/gif"}),
    WEBP: frozenset({"image/webp"}),
    SVG: frozenset({"image/svg+xml"}),
    MP3: frozenset({"audio/mpeg", "audio/mp3", "audio/mpeg3", "audio/x-mpeg"}),
    AAC: frozenset({"audio/aac", "audio/x-aac", "audio/aacp"}),
    OGG: frozenset({"audio/ogg", "audio/opus", "audio/vorbis", "application/ogg"}),
    WAV: frozenset({"audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave"}),
    M4A: frozenset({"audio/mp4", "audio/x-m4a", "audio/m4a", "audio/aac", "video/mp4"}),
    MP4: frozenset({"video/mp4", "audio/mp4", "video/x-m4v", "application/mp4"}),
    WEBM: frozenset({"video/webm", "audio/webm"}),
    PDF: frozenset({"application/pdf", "application/x-pdf"}),
    ZIP: frozenset({"application/zip", "application/x-zip-compressed", "multipart/x-zip"}),
    MARKDOWN: frozenset({"text/markdown", "text/x-markdown", "text/plain"}),
    TEXT: frozenset({"text/plain", "text/markdown", "text/x-markdown"}),
    VTT: frozenset({"text/vtt"}),
}
# Claims that say nothing about the type.
_VAGUE = frozenset({"", "application/octet-stream", "binary/octet-stream",
                    "application/x-www-form-urlencoded"})
# The extensions each type may carry.
_EXTENSIONS: dict[Sniffed, frozenset[str]] = {
    PNG: frozenset({".png"}),
    JPEG: frozenset({".jpg", ".jpeg", ".jpe", ".jfif"}),
    GIF: frozenset({".gif"}),
    WEBP: frozenset({".webp"}),
    SVG: frozenset({".svg"}),
    MP3: frozenset({".mp3"}),
    AAC: frozenset({".aac"}),
    OGG: frozenset({".ogg", ".oga", ".opus"}),
    WAV: frozenset({".wav"}),
    M4A: frozenset({".m4a", ".m4b", ".mp4", ".aac"}),
    MP4: frozenset({".mp4", ".m4v", ".m4a"}),
    WEBM: frozenset({".webm", ".weba"}),
    PDF: frozenset({".pdf"}),
    ZIP: frozenset({".zip"}),
    MARKDOWN: frozenset({".md", ".markdown"}),
    TEXT: frozenset({".txt", ".text", ".md", ".markdown"}),
    VTT: frozenset({".vtt"}),
}
KNOWN_EXTENSIONS = frozenset().union(*_EXTENSIONS.values())
_MARKDOWN_EXTENSIONS = _EXTENSIONS[MARKDOWN]
_TEXT_EXTENSIONS = _EXTENSIONS[TEXT] | _EXTENSIONS[VTT]
_TEXT_TYPES = _ALIASES[TEXT] | _ALIASES[VTT]

_M4A_BRANDS = {b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "}
_MP4_BRANDS = {b"isom", b"iso2", b"iso3", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1",
               b"M4V ", b"M4VH", b"M4VP", b"dash", b"mmp4", b"msnv", b"F4V ", b"F4P ", b"av01"}


def extension(filename: str | None) -> str:
    return PurePosixPath((filename or "").replace("\\", "/")).suffix.lower()


def _mp4(head: bytes) -> Sniffed | None:
    if len(head) < 12 or head[4:8] != b"ftyp":
        return None
    box = int.from_bytes(head[0:4], "big")
    major = head[8:12]
    compatible = {head[i:i + 4] for i in range(16, min(box, len(head)) - 3, 4)}
    if major in _M4A_BRANDS:
        return M4A
    if major in _MP4_BRANDS or compatible & _MP4_BRANDS:
        return MP4
    return None


def _ebml_doctype(head: bytes) -> bytes | None:
    """The DocType of an EBML (Matroska/WebM) header."""
    at = head.find(b"\x42\x82", 4, 64)
    if at < 0 or at + 3 > len(head):
        return None
    size_byte = head[at + 2]
    if not size_byte & 0x80:
        return None
    size = size_byte & 0x7F
    return head[at + 3:at + 3 + size]


def _mpeg_audio(head: bytes) -> Sniffed | None:
    if head.startswith(b"ID3"):
        return MP3
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return None
    layer = (head[1] >> 1) & 0x3
    if layer == 0 and head[1] & 0xF6 == 0xF0:
        return AAC  # ADTS: MPEG version bit, layer 00
    bitrate, rate = head[2] >> 4, (head[2] >> 2) & 0x3
    if layer == 1 and bitrate not in (0, 15) and rate != 3:
        return MP3
    return None


def _binary(head: bytes) -> Sniffed | None:
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith((b"GIF87a", b"GIF89a")):
        return GIF
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return WEBP
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return WAV
    if head.startswith(b"%PDF-"):
        return PDF
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return ZIP
    if head.startswith(b"OggS"):
        return OGG if (b"OpusHead" in head[:128] or b"\x01vorbis" in head[:128]) else None
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return WEBM if _ebml_doctype(head) == b"webm" else None
    return _mp4(head) or _mpeg_audio(head)


_SVG_START = re.compile(
    rb"^\s*(?:<\?xml[^>]*\?>\s*)?(?:<!--.*?-->\s*)*(?:<!DOCTYPE\s+svg[^>\[]*>\s*)?(?:<!--.*?-->\s*)*"
    rb"<svg[\s>/]", re.DOTALL | re.IGNORECASE)
_VTT_START = re.compile(rb"^WEBVTT(?:[ \t\r\n]|$)")


def _text(head: bytes, complete: bool) -> bool:
    """True when `head` reads as UTF-8 text (a cut at the end of an incomplete head allowed)."""
    body = head[3:] if head.startswith(b"\xef\xbb\xbf") else head
    if b"\x00" in body:
        return False
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        if complete or exc.start < len(body) - 3:
            return False
        text = body[:exc.start].decode("utf-8")
    return _CONTROL.search(text) is None


def sniff(head: bytes, filename: str | None = None, claimed: str | None = None, *,
          complete: bool = False) -> Sniffed:
    """The type of a file from its first bytes (at least `SNIFF_BYTES` of them, unless `complete`
    says `head` is the whole file). The name and claimed type only tell Markdown from plain text,
    and plain text from WebVTT (text with a WebVTT header, unless they say plain text or
    Markdown). Raises `Unrecognised`."""
    if not head:
        raise Unrecognised("the file is empty")
    found = _binary(head)
    if found is not None:
        return found
    if _text(head, complete):
        if _SVG_START.match(head.removeprefix(b"\xef\xbb\xbf")):
            return SVG
        if _VTT_START.match(head.removeprefix(b"\xef\xbb\xbf")) \
                and extension(filename) not in _EXTENSIONS[TEXT] \
                and media_type(claimed) not in _ALIASES[TEXT]:
            return VTT
        markdown = (extension(filename) in _MARKDOWN_EXTENSIONS
                    or media_type(claimed) in ("text/markdown", "text/x-markdown"))
        return MARKDOWN if markdown else TEXT
    other = _other_text(head)
    if other is not None:
        raise Unrecognised(f"the file is {other}; text is accepted in UTF-8 only: save it as "
                           "UTF-8 and upload it again")
    if extension(filename) in _TEXT_EXTENSIONS or media_type(claimed) in _TEXT_TYPES:
        raise Unrecognised(_not_text(head, complete))
    raise Unrecognised("the bytes are none of the accepted types (PNG, JPEG, GIF, WebP, SVG, MP3, "
                       "AAC, Ogg, WAV, M4A, MP4, WebM, PDF, ZIP, Markdown, plain text, WebVTT)")


_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32 text"), (b"\x00\x00\xfe\xff", "UTF-32 text"),
         (b"\xff\xfe", "UTF-16 text"), (b"\xfe\xff", "UTF-16 text"))


def _other_text(head: bytes) -> str | None:
    """What `head`, which is not UTF-8, is when it reads as text in another encoding."""
    for bom, name in _BOMS:
        if head.startswith(bom):
            return name
    if any(b < 32 and b not in b"\t\n\r\f" for b in head) or _utf8(head):
        return None
    return "text in an encoding other than UTF-8 (Windows-1252 or Latin-1, perhaps)"


def _utf8(head: bytes) -> bool:
    """Whether `head` decodes as UTF-8 (text with a character text may not hold, then)."""
    body = head.removeprefix(b"\xef\xbb\xbf")
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(body) - 3 and exc.reason == "unexpected end of data"
    return True


def media_type(value: str | None) -> str:
    """A `Content-Type` value without its parameters, lower-case."""
    return (value or "").split(";", 1)[0].strip().lower()


def check_claim(found: Sniffed, claimed: str | None, filename: str | None) -> None:
    """Raises `Mismatch` when the claimed type or the file name's extension is not `found`'s."""
    claim = media_type(claimed)
    if claim not in _VAGUE and claim not in _ALIASES[found]:
        raise Mismatch(f"the bytes are {found.label} ({found.content_type}), "
                       f"not {claim} as the request says")
    ext = extension(filename)
    if ext and ext not in _EXTENSIONS[found]:
        what = "an accepted type" if ext not in KNOWN_EXTENSIONS else "what its bytes are"
        raise Mismatch(f"the file {filename!r} is {found.label} ({found.content_type}), but its "
                       f"extension {ext} is not {what}")


_PREFIX = rb"(?:[\w.-]+:)?"  # a namespace prefix: <svg:script> is a script too
# a URL's parser drops tabs and line breaks: `java\tscript:` runs
_JAVASCRIPT = rb"\s*".join(bytes([c]) for c in b"javascript") + rb"\s*:"
_SVG_DANGERS = (
    (re.compile(rb"<\s*" + _PREFIX + rb"script", re.IGNORECASE), "a <script> element"),
    (re.compile(rb"<\s*" + _PREFIX + rb"foreignObject", re.IGNORECASE),
     "a <foreignObject> element"),
    (re.compile(rb"<!ENTITY", re.IGNORECASE), "an entity declaration"),
    # however it is set apart (space, "/", a quote, a prefix): an HTML parser takes them all
    (re.compile(rb"(?<![\w.-])on[a-z]+\s*=", re.IGNORECASE), "an event handler attribute (on…=)"),
    (re.compile(_JAVASCRIPT, re.IGNORECASE), "a javascript: URL"),
    (re.compile(rb"(?:href|src)\s*=\s*+(?![\"']?\s*(?:#|data:image/))", re.IGNORECASE),
     "a link to another resource"),
    (re.compile(rb"@import|url\(\s*[\"']?\s*(?!#|data:image/)", re.IGNORECASE),
     "a stylesheet that loads another resource"),
    (re.compile(rb"<\s*" + _PREFIX + rb"(?:iframe|embed|object|handler|listener)\b",
                re.IGNORECASE), "an embedded document"),
)
_CHARACTER_REFERENCE = re.compile(rb"&#(?:x([0-9a-f]+)|([0-9]+));?", re.IGNORECASE)


def _referenced(match: re.Match[bytes]) -> bytes:
    hexadecimal, decimal = match.groups()
    code = int(hexadecimal, 16) if hexadecimal else int(decimal)
    return chr(code).encode(errors="replace") if code < 0x110000 else match[0]


def check_svg(data: bytes) -> None:
    """Refuses an SVG that could run script or load anything else (`UnsafeSvg`), read as
    written and with its character references (`&#106;`) replaced; served SVGs also get a
    Content-Security-Policy that forbids both."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        raise UnsafeSvg("the SVG is not UTF-8 text") from None
    # an attribute's value may spell `javascript:` as references; XML allows none in names
    decoded = _CHARACTER_REFERENCE.sub(_referenced, data)
    for pattern, what in _SVG_DANGERS:
        if pattern.search(data) or pattern.search(decoded):
            raise UnsafeSvg(f"the SVG holds {what}; only static SVG images are accepted")


def check_text(data: bytes) -> None:
    """Raises `Unrecognised` unless the whole of `data` is UTF-8 text."""
    if not _text(data, complete=True):
        raise Unrecognised(_not_text(data, complete=True))


def _not_text(data: bytes, complete: bool) -> str:
    """Why `data`, text by its start or its name, is not UTF-8 text: the first line that is not
    UTF-8, or the first control character text may not hold."""
    body = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        if complete or exc.start < len(body) - 3:
            line = body.count(b"\n", 0, exc.start) + 1
            return (f"the file starts as UTF-8 text but line {line} is not UTF-8 (another "
                    "encoding, perhaps): save it as UTF-8 and upload it again")
        text = body[:exc.start].decode("utf-8")
    found = _CONTROL.search(text)
    where = f": U+{ord(found[0]):04X} on line {text.count(chr(10), 0, found.start()) + 1}" \
        if found else ""
    return f"the file holds bytes that text does not (control characters){where}"


# What text holds no byte of: control characters but tabs, line ends and form feeds (page
# breaks), DEL and the C1 controls (a Windows-1252 file's bytes read as Latin-1 make them).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")


class BrokenImage(ValueError):
    """Bytes that start as an accepted image but are not a whole, readable one."""


def check_image(path: Path, found: Sniffed) -> None:
    """Raises `BrokenImage` unless the raster image at `path` reads to its end: a PNG's chunks
    and their checksums through IEND; a JPEG's, GIF's or WebP's first frame decoded (a JPEG at
    an eighth of its size, which still reads all of it). Its size comes from its header, before
    any decoding, and is refused above Pillow's `MAX_IMAGE_PIXELS` (89 million)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=[_PILLOW_FORMAT[found]]) as image:
                if found is PNG:
                    image.verify()
                else:
                    if found is JPEG:
                        width, height = image.size
                        image.draft("RGB", (max(1, width // 8), max(1, height // 8)))
                    image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BrokenImage(f"the image has more than {Image.MAX_IMAGE_PIXELS:,} pixels; "
                          "scale it down") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error) as exc:
        # The decoder's own words name the server's files: they stay in the log.
        log.info("a broken image was refused", extra={"type": found.content_type,
                                                      "reason": f"{type(exc).__name__}: {exc}"})
        raise BrokenImage(f"the file starts as {found.label} but is not a whole one "
                          "(truncated or damaged); save or export it again and upload the new "
                          "file") from None


_PILLOW_FORMAT = {PNG: "PNG", JPEG: "JPEG", GIF: "GIF", WEBP: "WEBP"}
RASTER = frozenset(_PILLOW_FORMAT)
