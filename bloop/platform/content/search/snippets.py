"""What a hit shows of its text: a passage around the words that matched, marked in characters.

The index holds each text folded (`folded`: letters a language's readers take for one made one,
marks they mostly leave out left out), and the text as written beside it: a snippet is found in
the folded text and shown, with its marks, in the text as written (`Shown` maps one to the other).

tantivy's snippet is the passage with the most words of the query, each word marked wherever it
is; a phrase (`"for loop"`, or a Chinese or Japanese word: a phrase of characters) is marked only
where the whole phrase is, in a passage around its first occurrence, when it is in the text.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import tantivy

SNIPPET_CHARS = 200

# Russian ё, mostly typed without its dots; Arabic's short vowels, shadda and sukun (U+064B-U+0652), its
# superscript alef and the tatweel that stretches a word, mostly not typed. Indic vowel signs and
# viramas are letters of their words, and stay.
_FOLDS: dict[int, str | None] = {
    ord("ё"): "\N{CYRILLIC SMALL LETTER IE}", ord("Ё"): "\N{CYRILLIC CAPITAL LETTER IE}",
    **{mark: None for mark in (*range(0x064B, 0x0653), 0x0670, 0x0640)}}
_LEFT_OUT = frozenset(c for c, to in _FOLDS.items() if to is None)
_SPACE = re.compile(r"\s")
_ZWJ = "\N{ZERO WIDTH JOINER}"
_FLAGS = range(0x1F1E6, 0x1F200)  # regional indicators, read in pairs
_EXTENDS = (range(0x1F3FB, 0x1F400),  # skin tones
            range(0xE0020, 0xE0080),  # the tags of a subdivision's flag
            (0x0E33, 0x0EB3))  # Thai and Lao sara am

Range = tuple[int, int]


def folded(text: str) -> str:
    """`text` as it is indexed and searched: `Ёжик` as `Ежик`, `بِكُمْ` as `بكم`."""
    return text.translate(_FOLDS)


@dataclass(frozen=True)
class Shown:
    """A text as written and as folded, with where each folded character is in the text."""

    text: str
    folded: str
    # For each character of `folded` (and its end), its place in `text`; None when they are
    # the same places (nothing was left out).
    origins: tuple[int, ...] | None

    @classmethod
    def of(cls, text: str) -> Shown:
        as_searched = folded(text)
        if len(as_searched) == len(text):  # letters folded one for one, none left out
            return cls(text, as_searched, None)
        kept = [i for i, c in enumerate(text) if ord(c) not in _LEFT_OUT]
        return cls(text, as_searched, (*kept, len(text)))

    def span(self, start: int, end: int) -> Range:
        """Characters `start:end` of `folded` as characters of `text`: with the marks left out
        after its last character (`بكم` is `بِكُمْ` with its last sukun)."""
        if self.origins is None:
            return start, end
        return self.origins[start], self.origins[end]

    def cut(self, window: Range, marks: Iterable[Range]) -> tuple[str, list[Range]]:
        """The passage `window` of `folded` as written, and `marks` (in `window`, in order)
        as character ranges of it, marks that touch made one; each cut between the characters
        a reader sees, never between a letter and its marks."""
        text = self.text
        start, end = self.span(*window)
        start, end = cluster_start(text, start), cluster_end(text, end)
        ranges = [(max(cluster_start(text, a), start) - start,
                   min(cluster_end(text, b), end) - start)
                  for a, b in (self.span(*m) for m in marks)]
        return text[start:end], merged(ranges)


def merged(ranges: Iterable[Range]) -> list[Range]:
    """Ranges in order, those that overlap or touch made one: the characters of `中文`, marked
    one by one, as one mark."""
    out: list[Range] = []
    for start, end in sorted(ranges):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(end, out[-1][1]))
        else:
            out.append((start, end))
    return out


def char_offsets(data: bytes, offsets: Sequence[int]) -> list[int]:
    """Byte offsets into `data`, in ascending order, as character offsets."""
    out: list[int] = []
    byte = char = 0
    for offset in offsets:
        char += len(data[byte:offset].decode())
        byte = offset
        out.append(char)
    return out


def _joined(text: str, i: int) -> bool:
    """Whether `text[i]` is of one character with `text[i - 1]` (one extended grapheme
    cluster, near enough to Unicode's rules): a combining mark (a Hindi vowel sign, an Arabic
    short vowel, a variation selector) with its letter, an emoji with its skin tone or with a
    zero-width joiner and what it joins (👩‍👧), a flag's two letters."""
    c, code = text[i], ord(text[i])
    if text[i - 1] == _ZWJ or c == _ZWJ or unicodedata.category(c).startswith("M"):
        return True
    if any(code in r for r in _EXTENDS):
        return True
    if code in _FLAGS:
        before = i
        while before > 0 and ord(text[before - 1]) in _FLAGS:
            before -= 1
        return (i - before) % 2 == 1
    return False


# What reads as one character but runs farther than this from `i` (`e` and 20,000 accents, 8,000
# emoji joined) is cut, or a snippet would hold all of it; near `i`, after a character that is
# neither a mark nor a joiner when there is one within `_NEAR`.
_LONGEST = SNIPPET_CHARS + 20
_NEAR = 8


def _base(c: str) -> bool:
    return c != _ZWJ and not unicodedata.category(c).startswith("M")


def cluster_start(text: str, i: int) -> int:
    """`i`, or where the character a reader sees that `i` is inside of begins (near `i` when
    it begins more than `_LONGEST` code points before)."""
    at = i
    while 0 < at < len(text) and _joined(text, at):
        if i - at == _LONGEST:
            return next((p for p in range(i, max(i - _NEAR, 0), -1) if _base(text[p - 1])), i)
        at -= 1
    return at


def cluster_end(text: str, i: int) -> int:
    """`i`, or where the character a reader sees that `i` is inside of ends (near `i` when it
    ends more than `_LONGEST` code points after)."""
    at = i
    while 0 < at < len(text) and _joined(text, at):
        if at - i == _LONGEST:
            return next((p for p in range(i, min(i + _NEAR, len(text))) if _base(text[p - 1])), i)
        at += 1
    return at


def lead(text: str) -> str:
    """The start of `text`, for a hit whose text has none of the query's words."""
    if len(text) <= SNIPPET_CHARS:
        return text
    cut = text.rfind(" ", 0, SNIPPET_CHARS)
    if cut <= 0:
        cut = cluster_start(text, SNIPPET_CHARS) or cluster_end(text, SNIPPET_CHARS)
    return text[:cut] + (" …" if cut < len(text) else "")


def _size(text: str) -> int:
    return len(text.encode())


def window(text: str, start: int, end: int) -> Range:
    """About `SNIPPET_CHARS` of `text` around `start:end`, cut at spaces where the text has
    them. Counted in UTF-8 bytes, as tantivy counts its passages: a Chinese passage is as long
    on the screen as any other."""
    room = SNIPPET_CHARS - _size(text[start:end])
    if room <= 0:
        return start, end
    lo, hi = start, end
    before = room // 2
    while lo > 0 and (size := _size(text[lo - 1])) <= before:
        lo, before = lo - 1, before - size
    room -= room // 2 - before
    while hi < len(text) and (size := _size(text[hi])) <= room:
        hi, room = hi + 1, room - size
    while lo > 0 and (size := _size(text[lo - 1])) <= room:  # the text ended first
        lo, room = lo - 1, room - size
    if lo > 0 and not text[lo - 1].isspace() and (space := _SPACE.search(text, lo, start)):
        lo = space.end()
    if hi < len(text) and not text[hi].isspace():
        spaces = [m.start() for m in _SPACE.finditer(text, end, hi)]
        hi = spaces[-1] if spaces else hi
    # never inside what a reader sees as one character
    lo = min(cluster_end(text, lo), cluster_start(text, start))
    hi = max(cluster_start(text, hi), cluster_end(text, end))
    while lo < start and text[lo].isspace():
        lo += 1
    while hi > end and text[hi - 1].isspace():
        hi -= 1
    return lo, hi


@dataclass(frozen=True)
class _Token:
    start: int
    end: int
    word: str
    follows: bool  # nothing but separators between it and the token before


class Snippets:
    """Snippets of the `field` of the hits of `query`, whose words are `clauses` (each
    analysed: several words are a phrase). `words` is the field's analyzer; `tokens` splits
    text as it does, keeping every token."""

    def __init__(self, searcher: tantivy.Searcher, query: tantivy.Query, schema: tantivy.Schema,
                 field: str, clauses: Sequence[Sequence[str]], words: tantivy.TextAnalyzer,
                 tokens: tantivy.TextAnalyzer) -> None:
        self._field = field
        self._phrases = sorted((list(c) for c in clauses if len(c) > 1), key=len, reverse=True)
        self._singles = {c[0] for c in clauses if len(c) == 1}
        best = query
        if self._phrases:
            # Where no phrase is in the text (it is in the title), the single words alone:
            # tantivy would mark a phrase's words wherever they are (`タ` of `カタカナ`).
            best = tantivy.Query.boolean_query([
                (tantivy.Occur.Should, tantivy.Query.term_query(schema, field, word))
                for word in sorted(self._singles)])
        self._best = (tantivy.SnippetGenerator.create(searcher, best, schema, field)
                      if self._singles or not self._phrases else None)
        if self._best is not None:
            self._best.set_max_num_chars(SNIPPET_CHARS)
        self._every = (tantivy.SnippetGenerator.create(searcher, query, schema, field)
                       if self._phrases else None)
        self._words = words
        self._tokens = tokens

    def of(self, text: str) -> tuple[str, list[Range]]:
        """The passage of `text` (as written, in NFC) to show, and the ranges of it to mark."""
        shown = Shown.of(text)
        return self._around_phrase(shown) or self._best_passage(shown)

    def _best_passage(self, shown: Shown) -> tuple[str, list[Range]]:
        if self._best is None:
            return lead(shown.text), []
        snippet = self._best.snippet_from_doc(tantivy.Document(**{self._field: shown.folded}))
        marked = snippet.highlighted()
        if not marked:
            return lead(shown.text), []
        at = snippet.fragment_range()
        offsets = char_offsets(shown.folded.encode(), [
            at.start, *(at.start + o for r in marked for o in (r.start, r.end)), at.end])
        bounds = offsets[1:-1]
        return shown.cut((offsets[0], offsets[-1]), zip(bounds[::2], bounds[1::2], strict=True))

    def _around_phrase(self, shown: Shown) -> tuple[str, list[Range]] | None:
        if self._every is None:
            return None
        tokens = self._query_tokens(shown.folded)
        found = [self._occurrences(tokens, phrase) for phrase in self._phrases]
        first = next((occurrences[0] for occurrences in found if occurrences), None)
        if first is None:
            return None  # in the title or the tags only
        lo, hi = window(shown.folded, *first)
        marks = [r for occurrences in found for r in occurrences]
        marks += [(t.start, t.end) for t in tokens if t.word in self._singles]
        return shown.cut((lo, hi), [(a, b) for a, b in marks if lo <= a and b <= hi])

    def _query_tokens(self, text: str) -> list[_Token]:
        """Where the query's words are in `text` (folded), as tantivy marks them."""
        assert self._every is not None
        data = text.encode()
        self._every.set_max_num_chars(len(data) + 1)  # the whole text is one passage
        snippet = self._every.snippet_from_doc(tantivy.Document(**{self._field: text}))
        at = snippet.fragment_range().start
        marked = snippet.highlighted()
        offsets = char_offsets(data, [at + o for r in marked for o in (r.start, r.end)])
        tokens: list[_Token] = []
        end = -1
        for start, stop in zip(offsets[::2], offsets[1::2], strict=True):
            word = self._words.analyze(text[start:stop])
            if len(word) == 1:
                follows = end >= 0 and (end == start or not self._tokens.analyze(text[end:start]))
                tokens.append(_Token(start, stop, word[0], follows))
                end = stop
        return tokens

    @staticmethod
    def _occurrences(tokens: Sequence[_Token], phrase: Sequence[str]) -> list[Range]:
        n = len(phrase)
        return [(tokens[i].start, tokens[i + n - 1].end) for i in range(len(tokens) - n + 1)
                if all(tokens[i + k].word == phrase[k] and (k == 0 or tokens[i + k].follows)
                       for k in range(n))]
