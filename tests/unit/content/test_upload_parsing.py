"""Reading uploaded lesson files without I/O beyond a temporary folder: front matter, blocks,
links, zips that try to escape or explode, and PDFs."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from bloop.platform.content.model import NewLesson, check_math
from bloop.platform.content.uploads import archive, markdown, pdf
from bloop.platform.content.uploads.settings import UploadSettings
from bloop.platform.kit.errors import Problem
from tests.unit.content import media_samples as s

LIMITS = archive.Limits(max_entries=50, max_unpacked_bytes=200_000, max_ratio=100)


def test_front_matter_and_body() -> None:
    parsed = markdown.parse_markdown(s.MARKDOWN.decode(), "loops.md")
    assert parsed.title == "Loops"
    assert parsed.front.estimated_minutes == 7
    assert parsed.front.teaches == ["loops"]
    assert parsed.body.startswith("# Loops")
    assert markdown.to_blocks(parsed.body, "loops.md") == [
        "# Loops\n\nA `for` loop repeats.",
        "## While\n\nA `while` loop repeats until its condition is false."]


def test_the_title_falls_back_to_the_heading_then_the_name() -> None:
    assert markdown.parse_markdown("Intro\n\n# Real title\n", "x.md").title == "Real title"
    assert markdown.parse_markdown("```\n# not a heading\n```\n", "first-steps.md").title == \
        "First steps"


@pytest.mark.parametrize(("text", "field", "says"), [
    ("---\ntitle: [unclosed\n---\nBody", None, "not valid YAML"),
    ("---\ntitle: A\ncolour: red\n---\n", "colour", "Extra inputs"),
    ("---\nestimated_minutes: ten\n---\n", "estimated_minutes", "integer"),
    ("---\nestimated_minutes: 0\n---\n", "estimated_minutes", "greater than or equal"),
    ("---\ntags: python\n---\n", "tags", "list"),
    ("---\nlevel: expert\n---\n", "level", "beginner"),
    ("---\nteaches: [Not A Slug]\n---\n", "teaches.0", "pattern"),
    ("---\nlanguage: english!\n---\n", "language", "pattern"),
    ("---\ntitle: 12\n---\n", "title", "string"),
    ("---\n- a\n- b\n---\n", None, "mapping"),
    ("---\ntitle: A\n", None, "never closed"),
    ("---\na: &x [1]\nb: *x\n---\n", None, "aliases"),
    ("---\ntitle: 2001-02-30\n---\n", None, "day is out of range"),  # these answered 500
    ("---\nsummary: 2001-02-30 25:61:61\n---\n", None, "cannot read"),
    ("---\ntags: [2024-99-99]\n---\n", None, "cannot read"),
    ("---\ntitle: !!int 0o99\n---\n", None, "invalid literal"),
    ("---\nestimated_minutes: " + "9" * 5000 + "\n---\n", None, "cannot read"),
    ("---\ntags: " + "[" * 3000 + "]" * 3000 + "\n---\n", None, "nests too deeply"),
])
def test_bad_front_matter_names_the_field(text: str, field: str | None, says: str) -> None:
    with pytest.raises(Problem) as caught:
        markdown.parse_markdown(text, "lesson.md")
    problem = caught.value
    assert problem.status == 422
    assert problem.code == "invalid_front_matter"
    assert says in problem.detail
    assert problem.extra["file"] == "lesson.md"
    if field is not None:
        assert problem.extra["field"] == field


def test_an_unclosed_code_fence_is_malformed() -> None:
    with pytest.raises(Problem) as caught:
        markdown.parse_markdown("---\ntitle: A\n---\nText\n\n```python\nprint(1)\n", "a.md")
    assert caught.value.code == "invalid_markdown"
    assert caught.value.extra["line"] == 6


def test_local_links_are_found_and_rewritten() -> None:
    body = ('![a](img/a.png "A") and [pdf](<../docs/b c.pdf>) and ![ext](https://x.test/y.png)\n'
            '<img src="img/c.png" alt="c">\n\n[ref]: img/d.png\n[top](#top)')
    links = markdown.local_links(body, "lessons/one.md")
    assert links == {"img/a.png": "lessons/img/a.png", "<../docs/b c.pdf>": "docs/b c.pdf",
                     "img/c.png": "lessons/img/c.png", "img/d.png": "lessons/img/d.png"}
    assert markdown.local_links("![x](../../etc/passwd)", "one.md") == {"../../etc/passwd": None}
    out = markdown.rewrite_links(body, lambda t: f"/m/{t.strip('<>').replace(' ', '_')}")
    assert '![a](/m/img/a.png "A")' in out
    assert "[pdf](/m/../docs/b_c.pdf)" in out
    assert "![ext](https://x.test/y.png)" in out
    assert '<img src="/m/img/c.png"' in out
    assert "[ref]: /m/img/d.png" in out
    assert "[top](#top)" in out


def test_html_links_and_autolinks_are_found_and_rewritten() -> None:
    media = "media/" + "a" * 32 + "/b.png"
    body = (f'<a href="notes.pdf">n</a> <A title="t" HREF=\'{media}\'>m</A> <{media}> '
            "<https://x.test/y> </div> <br/> <b>\n\n`<a href=\"code.pdf\">` and <a href=\"#top\">")
    assert markdown.local_links(body, "one.md") == {"notes.pdf": "notes.pdf", media: media}
    out = markdown.rewrite_links(body, lambda t: f"/m/{t}")
    assert out == body.replace("notes.pdf", "/m/notes.pdf").replace(media, f"/m/{media}")
    every = markdown.rewrite_links(body, lambda t: t.upper(), local_only=False)
    assert "<HTTPS://X.TEST/Y>" in every
    assert "</div> <br/> <b>" in every  # tags are no links


def test_an_attribute_ending_in_href_is_no_link() -> None:
    body = '<a data-href="x.html" href="#top">t</a> <a data-href="y.html">u</a>'
    assert markdown.local_links(body, "one.md") == {}
    assert markdown.html_links('<a href="page.html">p</a> [m](m.md)') == {"page.html"}


def test_a_target_may_hold_balanced_parentheses() -> None:
    body = "![d](img/diagram(1).png) and [w](https://en.wikipedia.org/wiki/Ada_(language))"
    assert markdown.local_links(body, "one.md") == {"img/diagram(1).png": "img/diagram(1).png"}


@pytest.mark.timeout(60)  # in time growing with the square of a line, these took hours
@pytest.mark.parametrize("line", ["[x](", "[", "[x](<", "<img ", "![a](b", "[x](a(", "<img src"])
def test_link_finding_takes_time_in_proportion_to_the_text(line: str) -> None:
    body = "# T\n\n" + line * (2_000_000 // len(line))  # a lesson's largest text
    assert markdown.local_links(body, "one.md") in ({}, {"b": "b"})
    assert markdown.rewrite_links(body, lambda t: "/m/x") == body
    assert markdown.figures(body) == [body]


def test_links_inside_code_are_left_as_written() -> None:
    body = ("```\n![a](a.png)\n[ref]: r.png\n```\n`![b](b.png)` and ``<img src=\"c.png\">``\n"
            "~~~~ html\n~~~\n<img src=\"d.png\">\n~~~~\n[see `code`](e.png), \\`![f](f.png)`, "
            "`open\n\n![g](g.png) `\n\n```\n![h](h.png) in a fence never closed")
    assert markdown.local_links(body, "one.md") == {"e.png": "e.png", "f.png": "f.png",
                                                     "g.png": "g.png"}
    assert not markdown.has_link_definitions(body)
    assert markdown.rewrite_links(body, lambda t: f"/m/{t}") == body.replace(
        "(e.png)", "(/m/e.png)").replace("(f.png)", "(/m/f.png)").replace("(g.png)", "(/m/g.png)")


def test_links_inside_indented_code_are_left_as_written() -> None:
    body = ("# Links in Markdown\n\nWrite a link so:\n\n    [a](a.png)\n\n\tand ![b](b.png)\n\n"
            "- an item\n\n    its own paragraph ![c](c.png)\n\n        [d](d.png) is code in the item\n"
            "1. ten\n   lazy\n       ![e](e.png) goes on the paragraph\n\n"
            "> quoted\n>\n>     [f](f.png)\n\n## Heading\n    [g](g.png)\n\nafter [h](h.png)")
    assert markdown.local_links(body, "one.md") == {"c.png": "c.png", "e.png": "e.png",
                                                     "h.png": "h.png"}
    assert markdown.rewrite_links(body, lambda t: f"/m/{t}") == body.replace(
        "(c.png)", "(/m/c.png)").replace("(e.png)", "(/m/e.png)").replace("(h.png)", "(/m/h.png)")


LESSONS_WITH_INDENTED_TEXT = [
    "Intro\n\n    code\n    more\n\ntext\n    lazy, not code\n",
    "- one\n- two\n\n  two's paragraph\n\n      code in two\n\nout\n\n    code\n",
    "1. step\n\n   ```\n   fenced in the item\n   ```\n\n       code in the step\n2. next\n",
    "* a\n  * b\n\n        b's paragraph\n\n            b's code\n\n    a's paragraph\n",
    "> quote\n>\n>     code\n> more\n\n    code after\n",
    "# Title\n    code after a heading\n---\n    code after a rule\n\tcode by a tab\n",
    "Text\n\n  - item\n\n        code\n\n 10) ten\n\n         code\n",
    "- item\n\ntext\n\n    code once the list ended\n",
]


@pytest.mark.parametrize("body", LESSONS_WITH_INDENTED_TEXT)
def test_indented_code_is_where_commonmark_puts_it(body: str) -> None:
    reference = MarkdownIt("commonmark").disable("inline")
    code_lines = {n for token in reference.parse(body) if token.type in ("code_block", "fence")
                  and token.map for n in range(*token.map)}
    lines = body.split("\n")
    starts = [sum(len(x) + 1 for x in lines[:n]) for n in range(len(lines))]
    ours = {n for n, line in enumerate(lines) if line.lstrip(" >").strip() and any(
        a <= starts[n] and starts[n] + len(line) <= b for a, b in markdown._code(body))}
    assert ours == {n for n in code_lines if lines[n].lstrip(" >").strip()}


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("line", "outside"), [
    ("`![a](b)` ", 0), ("\\`![a](b)` ", 1), ("```\n![a](b)\n```\n", 0),
    ("~~~\n```\n![a](b)\n~~~\n", 0)])
def test_finding_code_takes_time_in_proportion_to_the_text(line: str, outside: int) -> None:
    times = 2_000_000 // len(line)
    body = "# T\n\n" + line * times + "\n\n[a](b)"
    assert markdown.local_links(body, "one.md") == {"b": "b"}
    assert markdown.rewrite_links(body, lambda t: "/m/x").count("(/m/x)") == outside * times + 1
    unclosed = "".join("`" * n + " ![a](b) " for n in range(1, 2000))  # no run closes another
    assert markdown.rewrite_links(unclosed, lambda t: "/m/x").count("(/m/x)") == 1999


def test_an_image_alone_in_its_paragraph_is_a_figure() -> None:
    body = ('# T\n\n![alone \\_x\\_](<img/a b.png> "Its title")\n\nText ![inline](b.png) here.\n'
            '![after text](c.png)\n\n```\n\n![code](d.png)\n\n```\n\n<!--\n\n![hidden](e.png)\n\n'
            '-->\n\n    ![indented](f.png)\n\n- ![listed](g.png)\n\n![a heading](i.png)\n---\n\n'
            '## Next\n![under a heading](h.png)')
    pieces = markdown.figures(body)
    assert "".join(p if isinstance(p, str) else p.text for p in pieces) == body
    assert [(p.target, p.alt, p.title) for p in pieces if isinstance(p, markdown.Figure)] == [
        ("<img/a b.png>", "alone _x_", "Its title"), ("h.png", "under a heading", "")]


def test_long_bodies_are_cut_between_paragraphs() -> None:
    para = "word " * 2000
    blocks = markdown.to_blocks("\n\n".join([para] * 12), "long.md")
    assert len(blocks) > 1
    assert all(len(b) <= markdown.MAX_BLOCK_CHARS for b in blocks)


def test_escaped_text_holds_no_math() -> None:
    """`$` was left as it was: text between two `$$` became display math (refused here for its
    unbalanced brace), a lone `$$` display math never closed, `$…$` inline math."""
    for text in ("In bash, echo $$ prints the PID.", "US$$5 {or so, and US$$8 for adults.",
                 "Between $x{$ and \\$y{$.", "$$"):
        escaped = markdown.escape(text)
        assert escaped.count("\\$") == text.count("$")
        assert check_math(escaped) == escaped


def test_a_pdfs_letter_shapes_become_letters_and_unspaced_lines_join() -> None:
    """An Arabic PDF's text came as the joined shapes its font draws (ﻣﺎ ﻫﻮ for ما هو), which
    a search in Arabic as typed never found; a Japanese line break became a space."""
    assert pdf._paragraphs("\ufee3\ufe8e \ufeeb\ufeee \ufef9\ufe8e\ufee3\n"
                           "\ufb01nal e\ufb00ort") == "ما هو لإام final effort"
    text = pdf._paragraphs("変数は値に\n付けた名前です。\nNext 文\n東京 大阪")
    assert text == "変数は値に付けた名前です。 Next 文東京 大阪"


def test_a_pdfs_lines_make_paragraphs_where_they_end_short_or_start_an_item() -> None:
    """A PDF seldom draws a blank line between paragraphs: a 100-page lecture's pages were each
    one paragraph, heading, text and code run together."""
    body = ("A closure captures variables from its enclosing scope, and keeps them alive\n"
            "for as long as the function that closes over them can still be called, which\n"
            "is what makes a closure more than a function with a few default arguments in\n"
            "it. Closures are how decorators keep their state between one call and the\n"
            "next.\n")
    page = ("Chapter 1: Functions and closures\n" + body + " def f(x):\n  return lambda y: x\n"
            "\u2022 a first point that runs on for a while\n\u2022 a second\n"
            "2. a numbered point\n")
    assert pdf._paragraphs(page).split("\n\n") == [
        "Chapter 1: Functions and closures", " ".join(body.split()), "def f(x):",
        "return lambda y: x", "\u2022 a first point that runs on for a while", "\u2022 a second",
        "2. a numbered point"]
    # a Chinese or Japanese character is two columns wide: their full lines are full lines too
    en, ja = "A line of English as wide as the page is, in a book of two languages\n", (
        "変数は値に付けた名前で、関数は呼べる値です。名前は値を指す。\n")
    text = pdf._paragraphs(en * 4 + "Its end.\n" + ja * 4 + "終わり。\n")
    assert text.split("\n\n") == [" ".join((en * 4 + "Its end.").split()),
                                    ja.strip() * 4 + "終わり。"]


def test_a_slides_heading_is_a_paragraph_of_its_own() -> None:
    """A slide holds too few lines to tell its full lines: its heading ran into its text. The
    document's lines tell them."""
    slides = ["What is a loop\nA loop repeats the statements of its body\nuntil its condition fails.",
              "Why loops\nThey say once what is done many times\nover, and for how long.",
              "Thanks"]
    assert pdf._document(slides) == [
        "What is a loop\n\nA loop repeats the statements of its body until its condition fails.",
        "Why loops\n\nThey say once what is done many times over, and for how long.", "Thanks"]


def test_a_pdfs_control_characters_become_spaces() -> None:
    """Lessons refuse control characters; a PDF's extracted text may hold them (drawn as
    nothing), and its import was refused for them."""
    text = pdf._paragraphs("Alpha\x00beta\x07 gamma\x1b[1m.\x0cNext\u0085page\x9f done.")
    assert text == "Alpha beta gamma \\[1m. Next page done."
    NewLesson.model_validate({"title": "PDF", "blocks": [{"type": "markdown", "markdown": text}]})


def test_pages_fit_the_blocks_a_lesson_has() -> None:
    pages = [f"Page {n}." for n in range(1, 251)]
    assert markdown.page_blocks(pages[:199], "a.pdf", 199) == pages[:199]
    blocks = markdown.page_blocks(pages, "a.pdf", 199)
    assert len(blocks) == 125  # two pages a block, in order
    assert "\n\n".join(blocks).split("\n\n") == pages
    big = ["x" * 20_000] * 10  # two fit a block, not three
    assert markdown.page_blocks(big, "a.pdf", 5) == ["x" * 20_000 + "\n\n" + "x" * 20_000] * 5
    with pytest.raises(Problem) as caught:
        markdown.page_blocks(big, "big.pdf", 4)
    assert (caught.value.status, caught.value.code) == (422, "lesson_too_long")
    assert caught.value.extra == {"file": "big.pdf"}
    assert "4 blocks of at most 50,000 characters" in caught.value.detail


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "upload.zip"
    path.write_bytes(data)
    return path


def test_a_zip_unpacks_under_names_of_our_own(tmp_path: Path) -> None:
    data = s.zip_of({"lesson.md": b"# L", "img/a.png": s.png(), "__MACOSX/._a.png": b"junk",
                     "img/": b""})
    entries = archive.unpack(write(tmp_path, data), tmp_path / "out", LIMITS, "pack.zip")
    assert [e.name for e in entries] == ["lesson.md", "img/a.png"]
    assert [e.path.name for e in entries] == ["entry-00000", "entry-00001"]
    assert entries[1].path.read_bytes() == s.png()


@pytest.mark.parametrize(("name", "says"), [
    ("../evil.md", "outside"),
    ("a/../../evil.md", "outside"),
    ("/etc/passwd", "absolute"),
    ("C:/windows/evil.md", "absolute"),
    ("a\\..\\evil.md", "backslashes"),
])
def test_paths_that_leave_the_archive_are_refused(tmp_path: Path, name: str, says: str) -> None:
    with pytest.raises(archive.UnsafeArchive, match=says):
        archive.unpack(write(tmp_path, s.zip_of({name: b"x"})), tmp_path / "out", LIMITS, "z")
    assert not (tmp_path / "out").exists()


def test_links_are_refused(tmp_path: Path) -> None:
    with pytest.raises(archive.UnsafeArchive, match="symbolic link"):
        archive.unpack(write(tmp_path, s.zip_with_symlink("img.png", "/etc/passwd")),
                       tmp_path / "out", LIMITS, "z")


def test_zip_bombs_stop_early(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(archive.UnsafeArchive) as ratio:
        archive.unpack(write(tmp_path, s.zip_bomb(150_000)), tmp_path / "out", LIMITS, "z")
    assert ratio.value.code == "zip_bomb"
    assert "BLOOP_UPLOAD_ZIP_MAX_RATIO raises the limit" in str(ratio.value)
    monkeypatch.setenv("BLOOP_UPLOAD_ZIP_MAX_RATIO", "500")
    assert UploadSettings().zip_max_ratio == 500, "the message names the setting"
    many = s.zip_of({f"{n}.md": bytes(range(256)) * 200 for n in range(5)},
                    compression=0)
    with pytest.raises(archive.ArchiveTooLarge):
        archive.unpack(write(tmp_path, many), tmp_path / "out", LIMITS, "z")
    assert not (tmp_path / "out").exists()


def unread(*_: object, **__: object) -> zipfile.ZipFile:
    raise AssertionError("the archive's directory was read")


@pytest.mark.parametrize("entries", [51, 65_600])  # the second needs ZIP64's end record
def test_too_many_entries_are_refused_before_the_directory_is_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, entries: int) -> None:
    """zipfile reads a whole directory into memory (440 MB for a million entries)."""
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as zf:
        for n in range(entries):
            zf.writestr(f"{n}.md", b"")
    monkeypatch.setattr(zipfile, "ZipFile", unread)
    with pytest.raises(archive.ArchiveTooLarge, match=f"holds {entries} entries"):
        archive.unpack(write(tmp_path, data.getvalue()), tmp_path / "out", LIMITS, "z")


def test_a_directory_larger_than_its_entry_count_says_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = bytearray(s.zip_of({f"{n:0200d}.md": b"" for n in range(1200)}))
    end = data.rfind(b"PK\x05\x06")
    data[end + 8:end + 12] = (1).to_bytes(2, "little") * 2  # "1 entry", over 300 KB
    monkeypatch.setattr(zipfile, "ZipFile", unread)
    with pytest.raises(archive.ArchiveTooLarge, match="holds 1 entries in"):
        archive.unpack(write(tmp_path, bytes(data)), tmp_path / "out", LIMITS, "z")


def test_a_name_cut_short_at_a_nul_is_refused(tmp_path: Path) -> None:
    data = bytearray(s.zip_of({"aXbc.md": b"# A"}))
    for at in (i for i in range(len(data)) if data[i:i + 7] == b"aXbc.md"):
        data[at + 1] = 0  # zipfile shows the entry as "a"
    with pytest.raises(archive.UnsafeArchive):
        archive.unpack(write(tmp_path, bytes(data)), tmp_path / "out", LIMITS, "z")


def test_a_zip_that_lies_about_its_sizes_is_caught_while_unpacking(tmp_path: Path) -> None:
    data = bytearray(s.zip_of({"a.md": b"A" * 5000}, compression=0))
    # Make both headers claim 50 bytes: the entry then holds more than it declares.
    for sig in (b"PK\x03\x04", b"PK\x01\x02"):
        at = data.find(sig)
        field = at + (22 if sig == b"PK\x03\x04" else 24)
        data[field:field + 4] = (50).to_bytes(4, "little")
    with pytest.raises(archive.UnsafeArchive):
        archive.unpack(write(tmp_path, bytes(data)), tmp_path / "out", LIMITS, "z")


def test_not_a_zip(tmp_path: Path) -> None:
    with pytest.raises(archive.UnsafeArchive) as caught:
        archive.unpack(write(tmp_path, b"PK\x03\x04 truncated"), tmp_path / "out", LIMITS, "z")
    assert caught.value.code == "invalid_archive"


async def test_pdf_text_by_page(tmp_path: Path) -> None:
    path = tmp_path / "a.pdf"
    path.write_bytes(s.pdf("Loops repeat work.\nThey stop *eventually*.", "", "Page three",
                           title="Loops"))
    text = await pdf.read_pdf(path, "a.pdf", UploadSettings(pdf_max_pages=10))
    assert text.title == "Loops"
    assert text.page_count == 3
    assert text.pages[0] == "Loops repeat work. They stop \\*eventually\\*."
    assert text.pages[1] == ""
    assert text.pages[2] == "Page three"
    with pytest.raises(Problem) as caught:
        await pdf.read_pdf(path, "a.pdf", UploadSettings(pdf_max_pages=2))
    assert caught.value.code == "pdf_too_long"


@pytest.mark.parametrize("data", [
    b"%PDF-1.4\n garbage without objects",
    s.pdf("Hello")[:60],
])
async def test_a_broken_pdf_is_unreadable(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "bad.pdf"
    path.write_bytes(data)
    with pytest.raises(Problem) as caught:
        await pdf.read_pdf(path, "bad.pdf", UploadSettings(pdf_max_pages=10))
    assert (caught.value.status, caught.value.code) == (422, "unreadable_pdf")
