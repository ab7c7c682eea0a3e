"""Sniffing each accepted type from real bytes made here, the claim checks, SVG safety, byte
ranges, and which media a lesson references."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bloop.platform.content.media import sniff
from bloop.platform.content.media.model import clean_filename
from bloop.platform.content.media.refs import media_url, referenced_media
from bloop.platform.content.model import Lesson, MarkdownBlock, NewLesson
from bloop.platform.kit.ranges import ByteRange, Unsatisfiable, parse_range
from tests.unit.content import media_samples as s

ID = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(("data", "name", "content_type", "kind"), [
    (s.png(), "a.png", "image/png", "image"),
    (s.jpeg(), "a.jpg", "image/jpeg", "image"),
    (s.gif(), "a.gif", "image/gif", "image"),
    (s.webp(), "a.webp", "image/webp", "image"),
    (s.SVG, "a.svg", "image/svg+xml", "image"),
    (s.mp3(), "a.mp3", "audio/mpeg", "audio"),
    (s.mp3_without_tag(), "a.mp3", "audio/mpeg", "audio"),
    (s.aac(), "a.aac", "audio/aac", "audio"),
    (s.ogg_opus(), "a.opus", "audio/ogg", "audio"),
    (s.wav(), "a.wav", "audio/wav", "audio"),
    (s.m4a(), "a.m4a", "audio/mp4", "audio"),
    (s.mp4(100), "a.mp4", "video/mp4", "video"),
    (s.webm(), "a.webm", "video/webm", "video"),
    (s.pdf("Hi"), "a.pdf", "application/pdf", "pdf"),
    (s.zip_of({"a.md": b"# A"}), "a.zip", "application/zip", "archive"),
    (s.MARKDOWN, "a.md", "text/markdown", "text"),
    ("Plain text, ünïcode.\n".encode(), "a.txt", "text/plain", "text"),
], ids=lambda v: v if isinstance(v, str) and "/" in v else None)
def test_each_accepted_type_is_told_by_its_bytes(data: bytes, name: str, content_type: str,
                                                  kind: str) -> None:
    found = sniff.sniff(data, name, complete=True)
    assert (found.content_type, found.kind) == (content_type, kind)
    sniff.check_claim(found, content_type, name)
    sniff.check_claim(found, None, None)
    sniff.check_claim(found, "application/octet-stream", name.upper())


def test_the_name_does_not_change_what_binary_bytes_are() -> None:
    assert sniff.sniff(s.png(), "song.mp3").content_type == "image/png"
    assert sniff.sniff(b"# Title\n", "notes.txt").content_type == "text/plain"
    assert sniff.sniff(b"# Title\n", None, "text/markdown").content_type == "text/markdown"


@pytest.mark.parametrize(("data", "claimed", "name", "says"), [
    (s.png(), "image/jpeg", "a.png", "not image/jpeg"),
    (s.png(), "image/png", "a.jpg", "extension .jpg"),
    (s.mp3(), "video/mp4", None, "MP3 audio"),
    (s.pdf("x"), None, "a.exe", "not an accepted type"),
    (s.MARKDOWN, "image/png", "a.md", "not image/png"),
    (s.zip_of({"a": b"b"}), "application/pdf", None, "ZIP"),
])
def test_a_claim_the_bytes_contradict_is_a_mismatch(data: bytes, claimed: str | None,
                                                     name: str | None, says: str) -> None:
    found = sniff.sniff(data, name, complete=True)
    with pytest.raises(sniff.Mismatch, match=says):
        sniff.check_claim(found, claimed, name)


@pytest.mark.parametrize("data", [
    b"\x00\x01\x02\x03binary" * 10,
    b"MZ\x90\x00\x03\x00\x00\x00" + bytes(64),  # a Windows executable
    b"\x7fELF\x02\x01\x01" + bytes(64),
    b"OggS\x00\x02" + bytes(40),  # Ogg without Opus or Vorbis (e.g. Theora)
    b"\x1a\x45\xdf\xa3\x84\x42\x82\x88matroska",  # Matroska, not WebM
    bytes([0xC3, 0x28, 0xA0, 0xA1]) * 8,  # invalid UTF-8
])
def test_other_bytes_are_unrecognised(data: bytes) -> None:
    with pytest.raises(sniff.Unrecognised):
        sniff.sniff(data, complete=True)
    with pytest.raises(sniff.Unrecognised):
        sniff.sniff(b"")


@pytest.mark.parametrize(("data", "says"), [
    ("# Café crème\n\nÀ la carte.".encode("cp1252"), "Windows-1252 or Latin-1"),
    ("# Week 1\n\nNotes.".encode("utf-16"), "UTF-16"),
    ("# Week 1".encode("utf-32"), "UTF-32"),
])
def test_text_in_another_encoding_is_named_as_such(data: bytes, says: str) -> None:
    with pytest.raises(sniff.Unrecognised, match=f"{says}.*save it as UTF-8"):
        sniff.sniff(data, "week1.md", "text/markdown", complete=True)


def test_text_that_stops_being_utf8_names_the_line() -> None:
    data = b"# Week 1\n\nNotes.\n" * 1000 + "Café".encode("latin-1")
    assert sniff.sniff(data[:sniff.SNIFF_BYTES], "w.md").kind == "text"
    with pytest.raises(sniff.Unrecognised, match="line 3001 is not UTF-8"):
        sniff.check_text(data)
    with pytest.raises(sniff.Unrecognised, match=r"control characters\): U\+0007 on line 1001$"):
        sniff.check_text(b"# Week 1\n" * 1000 + b"\x07")


@pytest.mark.parametrize(("name", "claimed"), [("a.md", None), ("a.txt", None), ("a.vtt", None),
                                                (None, "text/markdown"), ("a", "text/plain")])
def test_a_file_named_as_text_is_told_why_it_is_not(name: str | None, claimed: str | None) -> None:
    """It was told "the bytes are none of the accepted types (PNG, JPEG, …)"."""
    with pytest.raises(sniff.Unrecognised, match=r"control characters\): U\+000B on line 2$"):
        sniff.sniff(b"# A\n\x0b", name, claimed, complete=True)
    with pytest.raises(sniff.Unrecognised, match="none of the accepted types"):
        sniff.sniff(b"# A\n\x0b", "a.png", complete=True)
    for control in ("\x7f", "\x85", "\x9b"):  # DEL and C1 controls, which no lesson holds
        with pytest.raises(sniff.Unrecognised, match=rf"U\+00{ord(control):02X} on line 3$"):
            sniff.sniff(f"# A\n\n{control}".encode(), name, claimed, complete=True)


def test_a_utf8_character_cut_at_the_end_of_the_head_is_still_text() -> None:
    head = ("é" * 5000).encode()[:sniff.SNIFF_BYTES - 1]
    assert sniff.sniff(head).kind == "text"
    with pytest.raises(sniff.Unrecognised):
        sniff.sniff(head, complete=True)


def test_only_static_svg_is_accepted() -> None:
    sniff.check_svg(s.SVG)
    sniff.check_svg(b'<svg xmlns="http://www.w3.org/2000/svg"><use href="#a"/>'
                    b'<rect fill="url(#g)"/></svg>')
    for bad, what in [(s.SVG_WITH_SCRIPT, "script"), (s.SVG_WITH_HANDLER, "event handler"),
                      (b'<svg><a href="javascript:alert(1)">x</a></svg>', "javascript"),
                      (b'<svg><image href="https://evil.test/x.png"/></svg>', "link"),
                      (b'<svg><foreignObject><div/></foreignObject></svg>', "foreignObject"),
                      (b'<!DOCTYPE svg [<!ENTITY x "y">]><svg>&x;</svg>', "entity")]:
        with pytest.raises(sniff.UnsafeSvg, match=what):
            sniff.check_svg(bad)


@pytest.mark.parametrize(("bad", "what"), [
    (b'<svg xmlns="http://www.w3.org/2000/svg"/onload="alert(document.domain)">', "event handler"),
    (b'<svg xmlns="http://www.w3.org/2000/svg"onload="alert(1)"/>', "event handler"),
    (b"<svg xmlns='http://www.w3.org/2000/svg'onload='alert(1)'/>", "event handler"),
    (b'<svg><rect\nONCLICK = "x()"/></svg>', "event handler"),
    (b'<svg><rect\tonMouseOver=x()/></svg>', "event handler"),
    (b'<svg><rect x:onload="x()"/></svg>', "event handler"),
    (b'<svg xmlns:s="http://www.w3.org/2000/svg"><s:script>alert(1)</s:script></svg>', "script"),
    (b'<svg><x:foreignObject><div/></x:foreignObject></svg>', "foreignObject"),
    (b'<svg><h:iframe src="#a"/></svg>', "embedded"),
    (b'<svg><a href=https://evil.test/>x</a></svg>', "link"),
    (b'<svg><set attributeName="href" to="&#106;ava&#x53;cript:alert(1)"/></svg>', "javascript"),
    (b'<svg><set attributeName="href" to="java\tscript:alert(1)"/></svg>', "javascript"),
])
def test_an_svg_cannot_hide_script_behind_a_separator_prefix_or_reference(
        bad: bytes, what: str) -> None:
    with pytest.raises(sniff.UnsafeSvg, match=what):
        sniff.check_svg(bad)


def test_static_svg_attributes_that_merely_contain_on_are_accepted() -> None:
    sniff.check_svg(b'<svg xmlns="http://www.w3.org/2000/svg"><polygon points="0,0 1,1"'
                    b' data-on="1" inkscape:connector-curvature="0"/>'
                    b'<use href = "#a"/><text>&#60;b&#62; on the line</text></svg>')


@pytest.mark.parametrize("data", [s.png(64, 64)[:40], s.png(64, 64)[:16] + bytes(200),
                                  s.png(64, 64)[:-30], s.jpeg(64, 64)[:-200]],
                         ids=["cut-in-header", "garbage-after-signature", "cut-short", "jpeg"])
def test_a_broken_image_is_described_without_the_server_s_paths(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, data: bytes) -> None:
    """The decoder's message named the spool file it read ("cannot identify image file
    '/…/spool/upload-….part'"), and went to the client as it was."""
    path = tmp_path / "upload-x.part"
    path.write_bytes(data)
    found = sniff.JPEG if data[:2] == b"\xff\xd8" else sniff.PNG
    with caplog.at_level(logging.INFO, "bloop.content.media"), \
            pytest.raises(sniff.BrokenImage) as caught:
        sniff.check_image(path, found)
    assert str(caught.value) == (f"the file starts as {found.label} but is not a whole one "
                                 "(truncated or damaged); save or export it again and upload "
                                 "the new file")
    assert [r.message for r in caplog.records] == ["a broken image was refused"]


@pytest.mark.parametrize(("header", "expected"), [
    (None, (0, 1000, False)),
    ("bytes=0-", (0, 1000, True)),
    ("bytes=0-99", (0, 100, True)),
    ("bytes=500-", (500, 1000, True)),
    ("bytes=-100", (900, 1000, True)),
    ("bytes=-5000", (0, 1000, True)),
    ("bytes=990-5000", (990, 1000, True)),
    ("bytes=999-999", (999, 1000, True)),
    ("items=0-5", (0, 1000, False)),  # another unit: ignored
    ("bytes=0-1,5-9", (0, 1000, False)),  # several ranges: the whole file
    ("bytes=9-1", (0, 1000, False)),  # invalid: ignored
    ("BYTES = 10 - 19", (10, 20, True)),
])
def test_byte_ranges(header: str | None, expected: tuple[int, int, bool]) -> None:
    r = parse_range(header, 1000)
    assert (r.start, r.end, r.partial) == expected


def test_unsatisfiable_ranges() -> None:
    for header in ("bytes=1000-", "bytes=5000-6000", "bytes=-0"):
        with pytest.raises(Unsatisfiable):
            parse_range(header, 1000)
    assert ByteRange(10, 20, 1000).content_range == "bytes 10-19/1000"


def test_the_media_a_lesson_references() -> None:
    other = "f" * 32
    lesson = Lesson.create("acme", "py", NewLesson(title="L", blocks=[
        MarkdownBlock(markdown=f"![x]({media_url('acme', ID)}) and /media/{'a' * 31}"),
        MarkdownBlock(markdown=f"see [the file](/v1/tenants/acme/media/{other}/content)")]))
    assert referenced_media([lesson]) == {ID, other}


def test_file_names_are_cleaned() -> None:
    assert clean_filename("../../etc/passwd") == "passwd"
    assert clean_filename("C:\\Users\\me\\photo.png") == "photo.png"
    assert clean_filename("bad\x00name.png") == "badname.png"
    assert clean_filename("", "image.png") == "image.png"
    assert clean_filename(".hidden") == "hidden"
    assert clean_filename("photo\u202egpj.exe") == "photogpj.exe"
    assert clean_filename("\u2066a\u2069\u200e\u200f\u061c\u202a\u0085b.png") == "ab.png"
