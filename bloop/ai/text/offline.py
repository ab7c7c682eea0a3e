"""The offline text generator: no model, no key, no spend. It works from the lesson's own
sentences (extractive): the best-scoring sentences make the summary, key terms (emphasised words,
code names, the lesson's concepts, its most frequent words) make fill-in-the-blank, choice and
true/false questions and flashcards. A wrong option or a false statement takes a term that the
lesson uses neither near the sentence nor beside the right one (where its other names for it
would be), else the question is a blank to fill in. Everything it makes says so in its `note`."""

from __future__ import annotations

import asyncio
import math
import re
from collections import Counter
from dataclasses import dataclass

from bloop.ai import writing
from bloop.ai.phrases import Phrases, phrases, primary
from bloop.ai.text.generator import InvalidOutput
from bloop.ai.text.model import (
    OFFLINE_CARDS_NOTE,
    OFFLINE_NOTE,
    Flashcard,
    FlashcardSet,
    Generated,
    LessonText,
    QuizDraft,
    Simplified,
    Summary,
)
from bloop.ai.text.stopwords import ENGLISH, stopwords
from bloop.platform.content.model import Level
from bloop.platform.content.quiz import QuizBlock

BLANK = "_____"
FEW_TERMS = 3  # below this many, a lesson's longer words are asked about too
_FENCE = re.compile(r"```.*?```", re.S)
_EMPHASIS = re.compile(r"(\*\*|__|\*|_)(?=\S)(.+?)(?<=\S)\1")
_CODE = re.compile(r"`([^`\n]+)`")
_OPENERS = "`*(\"'\u00ab\u201e\u201c\u2018\u00bf\u00a1"  # quotes, guillemets, inverted marks
_UNSPACED = writing.UNSPACED
_LETTER = rf"[^\W\d_{_UNSPACED}]"
# A word: one Han or kana character, or letters (with their combining marks) and apostrophes.
_WORD = re.compile(rf"[{_UNSPACED}]|{_LETTER}(?:{_LETTER}|[{writing.MARKS}'\u2019-])+")
_WORD_CHAR = rf"[\w{writing.MARKS}]"
_COLONS = ":\uff1a"
_UNSPACED_CHAR = re.compile(rf"[{_UNSPACED}]")
# Unspaced text's content words: two Han characters side by side (most Chinese words are two),
# unless one is a grammatical one; a katakana word (loanwords).
_HAN_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]{2,}")
_KATAKANA_WORD = re.compile(r"[\u30a1-\u30fa\u30fc]{2,}")
_GRAMMAR_HAN = frozenset("的了是在和与也就都这那个一不把被着过吗呢吧们我你他她它之其而及或所很还又可以")
_CODE_MARK = re.compile(r"[=()\[\]{}<>+*/%:;\"]|\w[._]\w")  # operators, calls, dotted and snake names


@dataclass(frozen=True)
class Sentence:
    text: str
    position: int
    paragraph: int
    words: tuple[str, ...]


def _plain(markdown: str) -> str:
    codes: list[str] = []

    def keep(m: re.Match[str]) -> str:
        codes.append(m.group(1))
        return f"\x00{len(codes) - 1}\x00"

    text = _CODE.sub(keep, markdown)  # code first: `**` in code is not emphasis
    text = _EMPHASIS.sub(lambda m: m.group(2), text)
    text = re.sub(r"^\s{0,3}(#{1,6}\s+|[-*+]\s+|\d+[.)]\s+|>\s?)", "", text, flags=re.M)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return re.sub("\x00(\\d+)\x00", lambda m: codes[int(m.group(1))], text)


def sentences(markdown: str) -> list[Sentence]:
    """The lesson's prose sentences (code blocks left out), in order."""
    out: list[Sentence] = []
    prose = _FENCE.sub("\n\n", markdown)
    for pi, paragraph in enumerate(re.split(r"\n\s*\n", prose)):
        flat = " ".join(_plain(paragraph).split())
        if not flat or (flat.endswith(":") and len(flat) < 40):
            continue
        for piece in _split(flat):
            words = tuple(w.lower() for w in _WORD.findall(piece))
            if not 4 <= len(words) <= 70:
                continue
            if piece[-1:] in _COLONS:
                out.append(Sentence(piece[:-1] + writing.full_stop(piece[:-1]), len(out), pi,
                                    words))
            elif writing.ended(piece):
                out.append(Sentence(piece, len(out), pi, words))
    return out


def _split(flat: str) -> list[str]:
    """`flat` cut after each sentence's end (`writing.split`), but a Latin stop ends one only
    when what follows can start a sentence (a capital, an opening mark, a letter of a script
    without case), so "e.g. this" stays whole."""
    pieces: list[str] = []
    for piece in writing.split(flat):
        first = piece[0]
        starts = first in _OPENERS or (first.isalpha() and not first.islower())
        if pieces and not starts and pieces[-1].rstrip(writing.CLOSERS)[-1:] in \
                writing.LATIN_ENDS:
            pieces[-1] += " " + piece
        else:
            pieces.append(piece)
    return pieces


def _content(s: Sentence, stop: frozenset[str]) -> list[str]:
    """The words of `s` that may be terms: longer words than three letters, not in `stop`;
    in Han and katakana, which have no spaces, pairs of Han characters and katakana words."""
    found = [w for w in s.words if len(w) > 3 and w not in stop]
    for run in _HAN_RUN.findall(s.text):
        found += [run[i:i + 2] for i in range(len(run) - 1)
                  if run[i] not in _GRAMMAR_HAN and run[i + 1] not in _GRAMMAR_HAN]
    return found + _KATAKANA_WORD.findall(s.text)


def _length(text: str) -> int:
    """The length of `text` in Latin letters: a Han or kana character says about as much as
    three."""
    return len(text) + 2 * len(_UNSPACED_CHAR.findall(text))


def key_terms(lesson: LessonText, found: list[Sentence], limit: int = 30) -> list[str]:
    """Terms worth asking about, most telling first: emphasised words and code names of the
    prose, the lesson's concepts, then its most frequent content words."""
    prose = _FENCE.sub(" ", lesson.text)
    marked = [m.group(2).strip() for m in _EMPHASIS.finditer(_CODE.sub(" ", prose))]
    marked += [m.group(1).strip() for m in _CODE.finditer(prose)]
    concepts = [c.replace("-", " ") for c in lesson.concepts]
    stop = stopwords(lesson.language)
    counts = Counter(w for s in found for w in _content(s, stop))
    frequent = [w for w, n in counts.most_common() if n >= 2]
    text = " ".join(s.text for s in found).lower()
    terms: list[str] = []
    for term in [*marked, *concepts, *frequent]:
        t = term.strip(" .,;:")
        if 1 < len(t) <= 40 and t.lower() in text and t.lower() not in {x.lower() for x in terms}:
            terms.append(t)
    if len(terms) < FEW_TERMS:
        # a short plain lesson repeats few words: its longest, which tend to be its terms
        terms += sorted((w for w, n in counts.items() if n == 1 and len(w) >= 6
                         and w not in {x.lower() for x in terms}), key=lambda w: (-len(w), w))
    return terms[:limit]


def _ranked(found: list[Sentence], terms: list[str], stop: frozenset[str]) -> list[Sentence]:
    counts = Counter(w for s in found for w in _content(s, stop))
    lowered = [t.lower() for t in terms]

    def score(s: Sentence) -> float:
        words = _content(s, stop)
        base = sum(math.log1p(counts[w]) for w in words) / math.sqrt(len(s.words))
        bonus = sum(1.0 for t in lowered if t in s.text.lower())
        return base + bonus - 0.02 * s.position

    return sorted(found, key=score, reverse=True)


def _code_like(term: str) -> bool:
    """Whether `term` reads as code (`count = count + 1`, `f(x)`) rather than words: a wrong
    option of the other kind would give the answer away, and read as nonsense in a sentence."""
    return _CODE_MARK.search(term) is not None


def _related(found: list[Sentence], sentence: Sentence, term: str) -> set[str]:
    """The words of the sentences around `sentence` and of every one that uses `term`: one of
    them may be the lesson's other name for the term (`def` beside "function")."""
    lowered = term.lower()
    return {w for s in found if abs(s.position - sentence.position) <= 2
            or lowered in s.text.lower() for w in s.words}


def _variant(a: str, b: str, stop: frozenset[str]) -> bool:
    """Whether words `a` and `b` may be forms of one word (call, calls; recursive, recursion)."""
    if a == b:
        return True
    if min(len(a), len(b)) < 3 or a in stop or b in stop:
        return False
    return a in b or b in a or (min(len(a), len(b)) >= 5 and a[:5] == b[:5])


def _unrelated(other: str, term: str, related: set[str], stop: frozenset[str]) -> bool:
    """Whether `other` in place of `term` surely makes its sentence false, as far as the lesson
    can tell: no word of it is a form of a word of the term, of the sentences around, or of
    those beside the term anywhere in the lesson (where a synonym would be)."""
    words = [w.lower() for w in _WORD.findall(other)]
    near = related | {w.lower() for w in _WORD.findall(term)}
    return bool(words) and not any(_variant(w, r, stop) for w in words for r in near)


def _blanked(sentence: str, term: str) -> str | None:
    before = "" if _UNSPACED_CHAR.match(term[:1]) else rf"(?<!{_WORD_CHAR})"
    after = "" if _UNSPACED_CHAR.match(term[-1:]) else rf"(?!{_WORD_CHAR})"
    pattern = re.compile(rf"{before}{re.escape(term)}{after}", re.I)
    if not pattern.search(sentence):
        return None
    return pattern.sub(BLANK, sentence)


def _nothing(lesson: LessonText, found: list[Sentence] | None = None) -> InvalidOutput:
    if found:
        return InvalidOutput(f"the lesson {lesson.title!r} has no term to ask about in its "
                             "sentences (no emphasis, code, concept names or longer words)")
    return InvalidOutput(f"the lesson {lesson.title!r} has no prose sentences to work from "
                         "(sentences of 4 to 70 words, ending with a full stop)")


class OfflineTextGenerator:
    """Each answer is worked out on a thread: a long lesson's quiz took a quarter of a second
    of matching, which the event loop would have waited through."""

    async def summary(self, lesson: LessonText, *, instructions: str = "") -> Generated[Summary]:
        return await asyncio.to_thread(_summary, lesson)

    async def simpler(self, lesson: LessonText, level: Level, *,
                      instructions: str = "") -> Generated[Simplified]:
        return await asyncio.to_thread(_simpler, lesson, level)

    async def quiz(self, lesson: LessonText, count: int, *, quiz_id: str,
                   instructions: str = "") -> Generated[QuizDraft]:
        return await asyncio.to_thread(_quiz, lesson, count, quiz_id)

    async def flashcards(self, lesson: LessonText, count: int, *,
                         instructions: str = "") -> Generated[FlashcardSet]:
        return await asyncio.to_thread(_flashcards, lesson, count)


def _summary(lesson: LessonText) -> Generated[Summary]:
    found = sentences(lesson.text)
    if not found:
        raise _nothing(lesson)
    ranked = _ranked(found, key_terms(lesson, found), stopwords(lesson.language))
    chosen = sorted(ranked[:3], key=lambda s: s.position)
    best_per_paragraph: dict[int, Sentence] = {}
    for s in ranked:
        best_per_paragraph.setdefault(s.paragraph, s)
    points = sorted(best_per_paragraph.values(), key=lambda s: s.position)[:8]
    return Generated(Summary(summary=writing.joined([s.text for s in chosen]),
                             key_points=[s.text for s in points], source="offline",
                             note=OFFLINE_NOTE))


def _simpler(lesson: LessonText, level: Level) -> Generated[Simplified]:
    found = sentences(lesson.text)
    if not found:
        raise _nothing(lesson)
    longest, most = {"beginner": (20, 8), "intermediate": (30, 12),
                     "advanced": (70, 16)}[level]
    short = [s for s in found if len(s.words) <= longest] or found
    terms = key_terms(lesson, found)
    chosen = sorted(_ranked(short, terms, stopwords(lesson.language))[:most],
                    key=lambda s: s.position)
    lines = [f"- {s.text}" for s in chosen]
    glossary = []
    for term in terms[:6]:
        first = next((s for s in found if term.lower() in s.text.lower()), None)
        if first is not None and len(first.words) <= longest + 10:
            glossary.append(f"- **{term}**: {first.text}")
    text = "\n".join(lines)
    if glossary and level == "beginner":
        text += f"\n\n{phrases(lesson.language).key_words}\n" + "\n".join(glossary)
    return Generated(Simplified(level=level, text=text, source="offline",
                                note=OFFLINE_NOTE + " The sentences are the lesson's own, "
                                "chosen for length; they are not rewritten."))


def _quiz(lesson: LessonText, count: int, quiz_id: str) -> Generated[QuizDraft]:
    found = sentences(lesson.text)
    terms = key_terms(lesson, found)
    said, stop = phrases(lesson.language), stopwords(lesson.language)
    questions: list[dict[str, object]] = []
    used: set[int] = set()
    for s in _ranked(found, terms, stop):
        if len(questions) >= count:
            break
        if s.position in used:
            continue
        for term in terms:
            blanked = _blanked(s.text, term)
            if blanked is None or blanked.count(BLANK) > 2 or _length(blanked) < 20:
                continue
            question = _question(len(questions) + 1, s.text, blanked, term, terms,
                             _related(found, s, term), said, stop)
            if question is not None:
                questions.append(question)
                used.add(s.position)
                break
    if not questions:
        raise _nothing(lesson, found)
    block = QuizBlock.model_validate({"id": quiz_id, "title": said.check.format(lesson.title),
                                      "questions": questions})
    return Generated(QuizDraft(block=block, source="offline", note=OFFLINE_NOTE))


def _question(n: int, sentence: str, blanked: str, term: str, terms: list[str],
              related: set[str], said: Phrases,
              stop: frozenset[str]) -> dict[str, object] | None:
    quoted = said.lesson_says.format(sentence)
    feedback = {"correct": writing.joined([said.right, quoted]), "incorrect": quoted}
    others = [t for t in terms if t.lower() != term.lower()
              and t.lower() not in sentence.lower() and _code_like(t) == _code_like(term)
              and _unrelated(t, term, related, stop)]
    kind = n % 3
    if kind == 1 and len(others) >= 1:
        options = [term, *others[:3]]
        options.sort(key=lambda t: (len(t) * 7 + n) % 11)
        return {"id": f"q{n}", "type": "single_choice",
                "prompt": writing.joined([said.which_completes, blanked]),
                "feedback": feedback,
                "options": [{"id": f"o{i}", "text": t, "correct": t == term}
                            for i, t in enumerate(options, 1)]}
    wrong = n % 2 == 0
    if kind == 2 and (others or not wrong):
        statement = blanked.replace(BLANK, others[0] if wrong else term)
        if wrong:
            swapped = said.swapped.format(wrong=others[0], term=term)
            feedback = {"correct": writing.joined([said.right, swapped, quoted]),
                        "incorrect": writing.joined([said.wrong, swapped, quoted])}
        return {"id": f"q{n}", "type": "true_false",
                "prompt": writing.joined([said.true_or_false, statement]),
                "answer": not wrong,
                "feedback": feedback}
    return {"id": f"q{n}", "type": "short_text",
            "prompt": writing.joined([said.fill_in, blanked]), "accepted": [term],
            "feedback": feedback}


def _flashcards(lesson: LessonText, count: int) -> Generated[FlashcardSet]:
    found = sentences(lesson.text)
    terms = key_terms(lesson, found)
    said = phrases(lesson.language)
    english = primary(lesson.language) == "en"
    made: list[Flashcard] = []
    used: set[int] = set()
    for term in terms:
        if len(made) >= count:
            break
        for s in found:
            blanked = _blanked(s.text, term)
            if s.position in used or blanked is None or blanked.count(BLANK) > 2:
                continue
            asked = _definition_asked(s.text, term) if english else None
            front = asked or writing.joined([said.complete, blanked])
            back = s.text if asked else term
            made.append(Flashcard(front=front, back=back,
                                  concept_id=_concept_of(lesson, s.text)))
            used.add(s.position)
            break
    if not made:
        raise _nothing(lesson, found)
    return Generated(FlashcardSet(cards=made, source="offline", note=OFFLINE_CARDS_NOTE))


def _definition_asked(sentence: str, term: str) -> str | None:
    """The question `sentence` answers when it defines `term` ("A list is an ordered ...": "What
    is a list?"; "Variables are names that ...": "What are variables?"; "Recursion means ..."),
    else None: its subject is another, or it says only what the term is like or does ("is
    recursive when", "are values too, so")."""
    m = re.match(rf"(?:(an?|the) )?{re.escape(term)} (?:(is) (?:an?|the) |(means) "
                 r"|(is|are) [^\W\d_]+ (?:that|which|who|whose|where) )", sentence, re.I)
    if m is None or term.lower() in ENGLISH or re.search(r"\b(?:too|also)\b", sentence, re.I):
        return None
    subject = f"{m.group(1).lower()} {term}" if m.group(1) else term
    if m.group(3):
        return f"What does {subject} mean?"
    return f"What {(m.group(2) or m.group(4)).lower()} {subject}?"


def _concept_of(lesson: LessonText, sentence: str) -> str | None:
    lowered = sentence.lower()
    for concept in lesson.concepts:
        name = concept.replace("-", " ")
        if name in lowered or name.rstrip("s") in lowered:
            return concept
    return lesson.concepts[0] if len(lesson.concepts) == 1 else None
