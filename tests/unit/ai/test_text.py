"""The text generators: the LLM's (validated, asked again when invalid, quizzes checked against
content's quiz model) and the offline one (extractive, from the lesson's own sentences)."""

from __future__ import annotations

import json
import re

import pytest

from bloop.ai import phrases
from bloop.ai.providers.llm import OpenAiLlm, Pricing, ProviderUnavailable
from bloop.ai.text.generator import InvalidOutput, LlmTextGenerator
from bloop.ai.text.model import LessonText
from bloop.ai.text.offline import (
    BLANK,
    OfflineTextGenerator,
    _code_like,
    _plain,
    key_terms,
    sentences,
)
from bloop.platform.content.quiz import QuizBlock, ShortText, SingleChoice, TrueFalse
from bloop.platform.demo import data
from tests.unit.ai.fake_openai import SERVER_ERROR, FakeOpenAI, Reply, valid_answer

DEMO = [LessonText(id=f"l{i}", version=1, title=lesson.title, text="\n\n".join(lesson.blocks),
                   concepts=list(lesson.teaches)) for i, lesson in enumerate(data.LESSONS)]
# The lessons' prose as plain text: code blocks out, emphasis and code marks dropped.
FLAT = [" ".join(" ".join(_plain(paragraph).split()) for paragraph in re.split(
    r"\n\s*\n", re.sub(r"```.*?```", "\n\n", lesson.text, flags=re.S))) for lesson in DEMO]


def inside(sentence: str, flat: str) -> bool:
    """The lesson has the sentence (whose final colon the generator may have made a stop)."""
    return sentence.rstrip(".:") in flat


def generator(fake: FakeOpenAI, retries: int = 2) -> LlmTextGenerator:
    return LlmTextGenerator(OpenAiLlm(model="gpt-4o-mini", base_url=fake.base_url,
                                      pricing=Pricing(0.15, 0.6)), invalid_retries=retries)


async def test_each_kind_from_the_llm(fake_openai: FakeOpenAI) -> None:
    gen = generator(fake_openai)
    lesson = DEMO[0]
    summary = await gen.summary(lesson)
    assert summary.value.source == "llm"
    assert summary.value.key_points == ["A name refers to a value.", "Assignment rebinds a name."]
    assert summary.cost_usd == pytest.approx((1117 * 0.15 + 246 * 0.6) / 1e6)
    simpler = await gen.simpler(lesson, "beginner")
    assert simpler.value.level == "beginner"
    quiz = await gen.quiz(lesson, 3, quiz_id="check")
    assert isinstance(quiz.value.block, QuizBlock)
    assert (quiz.value.block.id, quiz.value.block.questions[0].id) == ("check", "q1")
    cards = await gen.flashcards(lesson, 2)
    assert [c.concept_id for c in cards.value.cards] == ["variables", None]
    assert "beginner learner" in fake_openai.requests[1]["messages"][-1]["content"]


async def test_invalid_json_is_asked_for_again(fake_openai: FakeOpenAI) -> None:
    fake_openai.script(Reply(content="Sure! Here is your summary: {"),
                       Reply(content=json.dumps(valid_answer("SummaryAnswer", ""))))
    got = await generator(fake_openai).summary(DEMO[0])
    assert got.value.summary.startswith("A variable")
    assert got.usage.prompt_tokens == 2 * 1117, "both tries are paid for"
    second = fake_openai.requests[1]["messages"]
    assert second[-2] == {"role": "assistant", "content": "Sure! Here is your summary: {"}
    assert "not valid" in second[-1]["content"]


async def test_a_quiz_content_would_refuse_is_never_accepted(fake_openai: FakeOpenAI) -> None:
    bad = valid_answer("QuizAnswer", "")
    bad["questions"][0]["options"][1]["correct"] = True  # two correct options in single_choice
    fake_openai.script(*[Reply(content=json.dumps(bad))] * 2)
    with pytest.raises(InvalidOutput) as caught:
        await generator(fake_openai, retries=1).quiz(DEMO[0], 3, quiz_id="check")
    assert "exactly one correct option" in str(caught.value)
    assert caught.value.usage.completion_tokens == 2 * 246
    assert not caught.value.transient


async def test_a_cut_off_answer_is_invalid(fake_openai: FakeOpenAI) -> None:
    fake_openai.script(Reply(content='{"summary": "S", "key_po', finish_reason="length"))
    with pytest.raises(InvalidOutput, match="token limit"):
        await generator(fake_openai, retries=0).summary(DEMO[0])


async def test_a_cut_off_answer_is_asked_for_once_more_with_twice_the_tokens(
        fake_openai: FakeOpenAI) -> None:
    cut = Reply(content='{"summary": "S", "key_po', finish_reason="length")
    fake_openai.script(cut, Reply(content=json.dumps(valid_answer("SummaryAnswer", ""))))
    got = await generator(fake_openai).summary(DEMO[0])
    assert got.value.summary.startswith("A variable")
    assert [r["max_completion_tokens"] for r in fake_openai.requests] == [4000, 8000]
    assert fake_openai.requests[1]["messages"] == fake_openai.requests[0]["messages"]
    fake_openai.script(cut, cut, Reply(content=json.dumps(valid_answer("SummaryAnswer", ""))))
    with pytest.raises(InvalidOutput, match=r"after 2 tries: .*token limit \(8000\)") as caught:
        await generator(fake_openai).summary(DEMO[0])
    assert len(fake_openai.requests) == 4, "not asked a third time"
    assert caught.value.usage.prompt_tokens == 2 * 1117


async def test_the_spend_before_a_provider_failure_goes_with_it(fake_openai: FakeOpenAI) -> None:
    fake_openai.script(Reply(content="Sure! Here is a summary."), SERVER_ERROR)
    with pytest.raises(ProviderUnavailable) as caught:
        await generator(fake_openai).summary(DEMO[0])
    assert caught.value.usage.prompt_tokens == 1117


@pytest.mark.parametrize(("kind", "answer"), [
    ("SummaryAnswer", {"summary": "Bell\x07 esc\x1b[31mRED nul\x00", "key_points": ["k"]}),
    ("SummaryAnswer", {"summary": "S", "key_points": ["bidi \u202eevil"]}),
    ("FlashcardsAnswer", {"cards": [{"front": "ctl\x00\x1b[31m front", "back": "b",
                                     "concept": None}]}),
])
async def test_control_characters_from_the_model_are_invalid(
        fake_openai: FakeOpenAI, kind: str, answer: dict[str, object]) -> None:
    """As client text would be refused (learning refuses such a card, 422)."""
    fake_openai.script(Reply(content=json.dumps(answer)))
    gen = generator(fake_openai, retries=1)
    got = await (gen.summary(DEMO[0]) if kind == "SummaryAnswer" else gen.flashcards(DEMO[0], 2))
    assert "control character U+" in fake_openai.requests[1]["messages"][-1]["content"]
    assert "\x00" not in json.dumps(got.value.model_dump()).encode().decode("unicode_escape")


async def test_a_quiz_has_the_questions_asked_for(fake_openai: FakeOpenAI) -> None:
    """Fewer is an invalid answer, asked for again; more are cut to the number asked."""
    three = valid_answer("QuizAnswer", "")
    two = {**three, "questions": three["questions"][:2]}
    fake_openai.script(Reply(content=json.dumps(two)))
    got = await generator(fake_openai).quiz(DEMO[0], 3, quiz_id="check")
    assert len(got.value.block.questions) == 3
    assert "the quiz has 2 questions; 3 were asked for" in \
        fake_openai.requests[1]["messages"][-1]["content"]
    fewer = await generator(fake_openai).quiz(DEMO[0], 2, quiz_id="check")
    assert [q.id for q in fewer.value.block.questions] == ["q1", "q2"]


@pytest.mark.parametrize("index", range(len(DEMO)))
async def test_offline_material_comes_from_the_lesson(index: int) -> None:
    gen, lesson, flat = OfflineTextGenerator(), DEMO[index], FLAT[index]
    summary = (await gen.summary(lesson)).value
    assert summary.source == "offline"
    assert "no language model" in summary.note
    for sentence in [*summary.key_points, *(s.text for s in sentences(summary.summary))]:
        assert inside(sentence, flat)
    simpler = (await gen.simpler(lesson, "beginner")).value
    assert simpler.text.startswith("- ")

    quiz = (await gen.quiz(lesson, 5, quiz_id="check")).value
    assert quiz.block == QuizBlock.model_validate(quiz.block.model_dump())
    assert 3 <= len(quiz.block.questions) <= 5
    for q in quiz.block.questions:
        if isinstance(q, ShortText):
            [answer] = q.accepted
            assert inside(q.prompt.split(": ", 1)[1].replace(BLANK, answer), flat)
        elif isinstance(q, SingleChoice):
            [right] = [o for o in q.options if o.correct]
            assert inside(q.prompt.split("? ", 1)[1].replace(BLANK, right.text), flat)
        elif isinstance(q, TrueFalse) and q.answer:
            assert inside(q.prompt.split("? ", 1)[1], flat)

    cards = (await gen.flashcards(lesson, 4)).value
    assert 1 <= len(cards.cards) <= 4
    assert {c.concept_id for c in cards.cards} <= {*lesson.concepts, None}
    for card in cards.cards:  # a blank may start the sentence: its answer is not capitalised
        assert inside(card.back, flat) or inside(card.front.replace(
            "Complete: ", "").replace(BLANK, card.back).lower(), flat.lower())


@pytest.mark.parametrize("index", range(len(DEMO)))
async def test_offline_wrong_options_are_of_the_right_answers_kind(index: int) -> None:
    """Code is offered against code and words against words: `count = count + 1` is never a
    wrong choice for "variable", nor swapped into a sentence to make it false."""
    lesson = DEMO[index]
    code = [t for t in key_terms(lesson, sentences(lesson.text)) if _code_like(t)]
    quiz = (await OfflineTextGenerator().quiz(lesson, 12, quiz_id="check")).value
    for q in quiz.block.questions:
        if isinstance(q, SingleChoice):
            [right] = [o for o in q.options if o.correct]
            assert {_code_like(o.text) for o in q.options} == {_code_like(right.text)}, q
        elif isinstance(q, TrueFalse):
            said = q.feedback.incorrect
            assert [t for t in code if t in q.prompt] == [t for t in code if t in said], q


def _words(text: str) -> set[str]:
    return {w.lower() for w in re.findall(r"[^\W\d_]+", text)}


def _forms(word: str, words: set[str]) -> set[str]:
    """The words of `words` that may be forms of `word` (call, calls; recursive, recursion)."""
    return {w for w in words if w == word or (len(w) >= 5 and len(word) >= 5
                                              and (w[:5] == word[:5] or w in word or word in w))}


@pytest.mark.parametrize("index", range(len(DEMO)))
async def test_offline_false_statements_are_false_and_say_what_was_changed(index: int) -> None:
    """"A def that ends without a return statement returns None" was keyed false, `def` put in
    place of "function", which the lesson says makes one; "A recursion definition needs a base
    case" in place of "recursive". And the feedback for "true" quoted the lesson as if it agreed.
    A word swapped in is now none the lesson uses beside the term or near the sentence, nor a
    form of one, and the feedback names it."""
    lesson, flat = DEMO[index], FLAT[index]
    found = sentences(lesson.text)
    quiz = (await OfflineTextGenerator().quiz(lesson, 12, quiz_id="check")).value
    for q in quiz.block.questions:
        if not isinstance(q, TrueFalse) or q.answer:
            continue
        assert "A def that ends" not in q.prompt
        said = re.fullmatch(r'No. It is false: "(.+?)" is in place of "(.+?)". The lesson '
                            r"says: (.+)", q.feedback.incorrect)
        assert said is not None, q.feedback
        swapped, term, sentence = said.groups()
        assert inside(sentence, flat)
        assert q.prompt == "True or false? " + re.sub(rf"(?<!\w){re.escape(term)}(?!\w)",
                                                      swapped, sentence, flags=re.I)
        beside = {w for s in found if term.lower() in s.text.lower() or sentence == s.text
                  for w in s.words}
        assert not {f for w in _words(swapped) for f in _forms(w, beside)}, q.prompt


@pytest.mark.parametrize("index", range(len(DEMO)))
async def test_offline_wrong_options_are_not_other_names_for_the_answer(index: int) -> None:
    """"In Python, a variable is a name that refers to a value": "variable" was a wrong option
    for "A _____ does not hold a copy of a value", where "name" was right."""
    lesson = DEMO[index]
    found = sentences(lesson.text)
    quiz = (await OfflineTextGenerator().quiz(lesson, 12, quiz_id="check")).value
    for q in quiz.block.questions:
        if isinstance(q, SingleChoice):
            [right] = [o.text for o in q.options if o.correct]
            beside = {w for s in found if right.lower() in s.text.lower() for w in s.words}
            for wrong in (o.text for o in q.options if not o.correct):
                assert not {f for w in _words(wrong) for f in _forms(w, beside)}, (wrong, q)


async def test_offline_asks_to_fill_in_a_blank_when_no_wrong_word_is_sure() -> None:
    """Every other term of this lesson ("def", "return") is beside "function" in it: offered
    as a wrong option ("A def that ends without a return statement returns None") or swapped
    in to make a false statement, it may be right. So each question is a blank to fill in."""
    lesson = LessonText(id="x", version=1, title="Functions", concepts=["functions"], text=(
        "A *function* gives a name to a computation, and `def` creates one. Each call of a "
        "function runs its body again. A function that ends without a `return` statement "
        "returns `None`."))
    quiz = (await OfflineTextGenerator().quiz(lesson, 3, quiz_id="check")).value
    assert len(quiz.block.questions) == 3
    for q in quiz.block.questions:
        assert isinstance(q, ShortText), q
        assert q.accepted == ["function"]


async def test_offline_flashcards_ask_what_a_term_is_only_where_the_lesson_defines_it() -> None:
    """Any sentence "X is/are/means ..." was a definition: "Functions are values too, so you can
    pass one to another function." made the card "What is functions?"."""
    lesson = LessonText(id="x", version=1, title="Terms", concepts=[
        "variables", "list", "tuples", "generator", "recursion"], text=(
        "Variables are names that refer to values. A list is an ordered collection of values. "
        "Tuples are values too, so you can put them in a list. A generator is lazy when it "
        "runs. Recursion means a function calling itself again."))
    cards = (await OfflineTextGenerator().flashcards(lesson, 5)).value.cards
    assert [(c.front, c.back) for c in cards] == [
        ("What are variables?", "Variables are names that refer to values."),
        ("What is a list?", "A list is an ordered collection of values."),
        (f"Complete: {BLANK} are values too, so you can put them in a list.", "tuples"),
        (f"Complete: A {BLANK} is lazy when it runs.", "generator"),
        ("What does recursion mean?", "Recursion means a function calling itself again.")]
    [functions] = [lesson for lesson in DEMO if lesson.title == "Functions"]
    fronts = [c.front for c in (await OfflineTextGenerator().flashcards(functions, 8)).value.cards]
    assert not [f for f in fronts if f.startswith("What")], fronts


async def test_offline_notes_say_what_becomes_of_each_kind() -> None:
    """The flashcards' note said "Review before publishing", but generated cards join learners'
    decks as they are (README, *Learning*); a summary or a quiz is for an educator to use."""
    generator, lesson = OfflineTextGenerator(), DEMO[2]
    cards = (await generator.flashcards(lesson, 3)).value.note
    assert "Review before publishing" not in cards
    assert "join the decks of the learners" in cards
    assert "no language model" in cards
    for made in ((await generator.summary(lesson)).value,
                 (await generator.quiz(lesson, 3, quiz_id="check")).value):
        assert made.note.endswith("Review before publishing.")


async def test_offline_refuses_a_lesson_with_only_code() -> None:
    lesson = LessonText(id="x", version=1, title="Code", text="```python\nprint(1)\n```")
    assert sentences(lesson.text) == []
    with pytest.raises(InvalidOutput, match="no prose sentences"):
        await OfflineTextGenerator().quiz(lesson, 3, quiz_id="check")


async def test_offline_asks_about_a_short_lessons_longer_words() -> None:
    """Three plain sentences, no word said twice, no emphasis or code, the concept unnamed:
    no term was found, and the job failed saying the lesson had "no prose sentences"."""
    lesson = LessonText(id="x", version=1, title="Values", concepts=["k03"], text=(
        "Python evaluates every expression to a value. A function gives a name to a "
        "computation so that you can reuse it later. Each call runs the body again."))
    generator = OfflineTextGenerator()
    cards = (await generator.flashcards(lesson, 5)).value.cards
    assert {c.back for c in cards} >= {"expression", "computation"}
    quiz = (await generator.quiz(lesson, 3, quiz_id="check")).value.block
    assert len(quiz.questions) == 2  # the third sentence has no word of six letters
    bare = LessonText(id="y", version=1, title="Bare", text="The cat sat on a mat. A dog ran "
                                                            "to the cat and sat.")
    with pytest.raises(InvalidOutput, match="no term to ask about"):
        await generator.flashcards(bare, 5)


RUSSIAN = ("Переменная — это имя, которое ссылается на значение. Присваивание связывает имя со "  # noqa: RUF001
           "значением справа, а не копирует его. Два имени могут ссылаться на один и тот же "  # noqa: RUF001
           "объект. Новое присваивание имени никогда не меняет другое имя, которое ссылается на "
           "тот же объект.")
CHINESE = ("变量是指向一个值的名字。赋值语句把左边的名字绑定到右边表达式的值。两个名字可以指向同一个"
           "对象。重新绑定一个名字不会改变另一个名字所指向的对象。")


@pytest.mark.parametrize(("text", "language", "concept"), [
    (RUSSIAN, "ru", "имя"), (CHINESE, "zh", "名字"),
    ("Une variable désigne une valeur précise. Über alles: l'affectation lie le nom à la "
     "valeur. Deux noms peuvent désigner le même objet en mémoire.", "fr", "valeur")])
async def test_offline_reads_lessons_in_any_script(text: str, language: str, concept: str) -> None:
    """Only ASCII letters made words, so a Russian or Chinese lesson had no sentence at all (its
    jobs failed after taking the hourly quota), "désigne" read as "signe", and a sentence
    starting "Über" ran on from the one before."""
    lesson = LessonText(id="x", version=1, title="t", text=text, concepts=[concept],
                        language=language)
    found = sentences(text)
    assert len(found) >= 3
    assert all(s.text[-1] in ".。" for s in found)
    if language == "fr":
        assert "désigne" in found[0].words
        assert found[1].text.startswith("Über")
    summary = (await OfflineTextGenerator().summary(lesson)).value
    assert all(inside(s, text) for s in summary.key_points)
    cards = (await OfflineTextGenerator().flashcards(lesson, 3)).value
    assert any(card.back == concept or concept in card.back for card in cards.cards)


HINDI = ("पाइथन एक लोकप्रिय प्रोग्रामिंग भाषा है। चर एक नाम है जो किसी मान को संदर्भित करता है। "
         "असाइनमेंट चर को नया मान देता है॥ क्या आप पाइथन सीखना चाहते हैं? हाँ, पाइथन सीखना आसान "
         "है। फ़ंक्शन एक नाम वाला कोड ब्लॉक है जो काम करता है।")


async def test_offline_reads_hindi_and_arabic_sentences_and_words() -> None:
    """`।` and `॥` ended no sentence, nor `؟`; and a word stopped at a vowel sign (a combining
    mark): पाइथन read as इथन, करता as करत. Every Hindi job failed: "no prose sentences"."""
    found = sentences(HINDI)
    assert [s.text[-1] for s in found] == ["।", "।", "॥", "?", "।", "।"]
    assert found[0].words[0] == "पाइथन"
    assert "करता" in found[1].words
    lesson = LessonText(id="x", version=1, title="t", text=HINDI, concepts=["पाइथन"],
                        language="hi")
    generator = OfflineTextGenerator()
    summary = (await generator.summary(lesson)).value
    assert all(inside(s, HINDI) for s in summary.key_points)
    assert (await generator.simpler(lesson, "beginner")).value.text.startswith("- ")
    quiz = (await generator.quiz(lesson, 3, quiz_id="check")).value.block
    assert len(quiz.questions) == 3
    cards = (await generator.flashcards(lesson, 3)).value.cards
    assert "पाइथन" in {card.back for card in cards}
    arabic = ("هل فهمت الدرس جيدا يا صديقي؟ نعم، المتغير يحفظ القيمة لوقت لاحق. الدالة هي كتلة "
              "من التعليمات لها اسم.")
    assert [s.text for s in sentences(arabic)] == [
        "هل فهمت الدرس جيدا يا صديقي؟", "نعم، المتغير يحفظ القيمة لوقت لاحق.",
        "الدالة هي كتلة من التعليمات لها اسم."]


JAPANESE = ("変数は値に付けた名前です。代入文は右辺の式の値を左辺の名前に結び付けます。二つの名前が"
            "同じオブジェクトを指すことがあります。名前を付け直しても、もう一方の名前が指すオブジェクト"
            "は変わりません。関数は名前の付いたコードのまとまりです。")
LONGER_CHINESE = CHINESE + ("函数是一段有名字的代码。调用函数时会执行函数体里的语句。列表是一个有序的"
                            "对象集合。列表里的对象可以是任何类型。")


async def test_offline_summary_of_japanese_or_chinese_has_no_spaces_between_sentences() -> None:
    for text, language in [(JAPANESE, "ja"), (CHINESE, "zh")]:
        lesson = LessonText(id="x", version=1, title="t", text=text, language=language)
        summary = (await OfflineTextGenerator().summary(lesson)).value.summary
        assert summary.count("。") == 3
        assert " " not in summary


async def test_offline_asks_as_many_questions_of_chinese_as_of_other_scripts() -> None:
    """Each Han character is a word, and words of three characters or fewer were not terms: a
    Chinese lesson of eight sentences gave 1 question of the 5 asked."""
    lesson = LessonText(id="x", version=1, title="t", text=LONGER_CHINESE, concepts=["k"],
                        language="zh")
    terms = key_terms(lesson, sentences(LONGER_CHINESE))
    assert {"名字", "对象", "函数", "列表"} <= set(terms)
    assert not {"一个", "可以", "的名"} & set(terms)
    quiz = (await OfflineTextGenerator().quiz(lesson, 5, quiz_id="check")).value.block
    assert len(quiz.questions) == 5


FUNCTION_WORDS = {
    "fr": ("Une variable est un nom qui désigne une valeur. Dans Python, on crée une variable "
           "avec le signe égal. Cette valeur peut être un nombre ou une chaîne.\n\nLes fonctions "
           "sont des blocs de code que l'on peut appeler plusieurs fois. Avec les fonctions, le "
           "code devient plus court et plus facile à lire. Une boucle parcourt une liste dans "
           "cette fonction.", {"dans", "avec", "cette", "peut", "sont", "plus"}),
    "de": ("Eine Variable ist ein Name für einen Wert. In Python wird eine Variable mit dem "
           "Gleichheitszeichen erstellt. Dieser Wert kann eine Zahl sein.\n\nFunktionen sind "
           "Codeblöcke, die man mehrmals aufrufen kann. Eine Funktion bekommt Parameter und "
           "wird mit einem Namen aufgerufen. Mit Funktionen sind Programme kürzer.",
           {"eine", "einen", "wird", "kann", "sind", "dieser", "einem"}),
    "es": ("Una variable es un nombre para un valor. Para crear una variable usamos el signo "
           "igual. Este valor puede ser un número o una cadena.\n\nLas funciones son bloques de "
           "código que pueden llamarse muchas veces. Con las funciones, el código es más corto "
           "para leer. Cada función tiene un nombre y también parámetros.",
           {"para", "este", "puede", "pueden", "muchas", "también", "cada", "tiene"}),
}


@pytest.mark.parametrize("language", sorted(FUNCTION_WORDS))
async def test_offline_terms_are_not_the_languages_function_words(language: str) -> None:
    """Stopwords were English only: a French lesson's terms began "valeur, variable, dans,
    avec, cette, peut, sont", and its quiz asked for "dans" in a blank."""
    text, function_words = FUNCTION_WORDS[language]
    lesson = LessonText(id="x", version=1, title="t", text=text, language=language)
    terms = {t.lower() for t in key_terms(lesson, sentences(text))}
    assert "variable" in terms
    assert not terms & function_words, terms & function_words
    quiz = (await OfflineTextGenerator().quiz(lesson, 5, quiz_id="check")).value.block
    for q in quiz.questions:
        asked = ({q.accepted[0].lower()} if isinstance(q, ShortText)
                 else {o.text.lower() for o in q.options} if isinstance(q, SingleChoice)
                 else set())
        assert not asked & function_words, q


FRENCH = ("Une variable est un nom donné à une valeur du programme. L'affectation lie le nom de "
          "gauche à la valeur de droite. Deux noms peuvent désigner le même objet en mémoire. "
          "Une fonction est un bloc de code qui porte un nom. Une fonction renvoie une valeur "
          "au programme qui l'appelle.")


async def test_offline_quizzes_and_cards_ask_in_the_lessons_language() -> None:
    """A Russian, Japanese or French lesson's quiz said "Fill in the blank:", "True or false?"
    and "Right. The lesson says:" around its own sentences."""
    generator = OfflineTextGenerator()
    for text, language, said in [(FRENCH, "fr-CA", phrases.PHRASES["fr"]),
                                 (JAPANESE, "ja", phrases.PHRASES["ja"]),
                                 (HINDI, "hi", phrases.PHRASES["hi"])]:
        lesson = LessonText(id="x", version=1, title="T", text=text, language=language)
        quiz = (await generator.quiz(lesson, 3, quiz_id="check")).value.block
        assert quiz.title == said.check.format("T")
        starts = {said.which_completes, said.true_or_false, said.fill_in}
        for q in quiz.questions:
            assert any(q.prompt.startswith(s) for s in starts), q.prompt
            assert q.feedback.incorrect.startswith((said.lesson_says.format(""), said.wrong))
        cards = (await generator.flashcards(lesson, 3)).value.cards
        assert cards
        assert all(c.front.startswith(said.complete) for c in cards)
        simpler = (await generator.simpler(lesson, "beginner")).value.text
        assert "Key words" not in simpler
    english = LessonText(id="x", version=1, title="T", text=FRENCH, language="sw")
    assert (await generator.quiz(english, 1, quiz_id="check")).value.block.title == "Check: T"
