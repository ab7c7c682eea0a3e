"""What the AI tools need to know of the world's scripts: where a sentence ends (the Latin
stops, and the ideographic, Devanagari, Arabic and Urdu ones), which characters make a word
(letters and their combining marks, so पाइथन is one word), and which scripts are written without
spaces between words (Han and kana). The offline text generator, the speech adapters and the
narration all cut text with these."""

from __future__ import annotations

import re
import unicodedata

LATIN_ENDS = ".!?\u2026"  # full stop, exclamation and question marks, ellipsis
# Ideographic and fullwidth stops; Devanagari danda and double danda; Arabic question mark and
# Urdu full stop. No text goes on after them in the same sentence, so no space need follow.
UNSPACED_ENDS = "\u3002\uff01\uff1f"
OTHER_ENDS = "\u0964\u0965\u061f\u06d4"
ENDS = LATIN_ENDS + UNSPACED_ENDS + OTHER_ENDS
# What may close a sentence after its stop: quotes, brackets, corner brackets, guillemets.
CLOSERS = "\"')\\]\u300d\u300f\uff09\u201d\u2019\u00bb"
# Han and kana are written without spaces: each character is a word of its own.
UNSPACED = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"


def _ranges(codes: list[int]) -> str:
    """A regex character class body for `codes` (ascending), as ranges."""
    out: list[str] = []
    start = prev = codes[0]
    for code in [*codes[1:], -1]:
        if code != prev + 1:
            out.append(re.escape(chr(start)) if start == prev
                       else f"{re.escape(chr(start))}-{re.escape(chr(prev))}")
            start = code
        prev = code
    return "".join(out)


# Combining marks (Unicode Mn, Mc, Me): vowel signs of Indic scripts, Arabic vowels, accents
# written apart. Python's `\w` leaves them out. They are in planes 0, 1 and 14 only.
MARKS = _ranges([c for c in [*range(0x20000), *range(0xE0000, 0xE1000)]
                 if unicodedata.category(chr(c)) in ("Mn", "Mc", "Me")])

_END = re.compile(rf"(?:[{LATIN_ENDS}]+[{CLOSERS}]*(?=\s|$)|[{UNSPACED_ENDS}{OTHER_ENDS}]+"
                  rf"[{CLOSERS}]*)\s*")
# A Japanese quotation goes on after its closing bracket (「…です。」と言いました。).
_QUOTED = re.compile("(?<=[\u300d\u300f])(?:と|って)")
_UNSPACED_END = re.compile(rf"[{UNSPACED_ENDS}][{CLOSERS}]*$")
_UNSPACED_CHAR = re.compile(rf"[{UNSPACED}]")
_DEVANAGARI = re.compile(r"[\u0900-\u097f]")


def split(text: str) -> list[str]:
    """`text` cut after each sentence's end, whitespace collapsed, empty pieces left out: after a
    Latin stop (and what closes it) followed by a space, after the others always."""
    flat = " ".join(text.split())
    pieces: list[str] = []
    start = 0
    for m in _END.finditer(flat):
        if not _QUOTED.match(flat, m.end()):
            pieces.append(flat[start:m.end()].strip())
            start = m.end()
    pieces.append(flat[start:].strip())
    return [p for p in pieces if p]


def ended(sentence: str) -> bool:
    """Whether `sentence` ends with a stop (which a closing quote or bracket may follow)."""
    return sentence.rstrip(CLOSERS)[-1:] in ENDS


def full_stop(sentence: str) -> str:
    """The full stop of the script `sentence` ends in: 。 after Han or kana, । after Devanagari,
    else "."."""
    last = sentence.rstrip(CLOSERS)[-1:]
    if _UNSPACED_CHAR.match(last):
        return "\u3002"
    return "\u0964" if _DEVANAGARI.match(last) else "."


def stopped(text: str) -> str:
    """`text` ending with a stop: its script's full stop added when it has none."""
    return text if ended(text) else text + full_stop(text)


def joined(sentences: list[str]) -> str:
    """`sentences` as one text: a space after each, but none after an ideographic stop."""
    out = ""
    for s in sentences:
        out += s if not out or _UNSPACED_END.search(out) else " " + s
    return out
