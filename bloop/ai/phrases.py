# ruff: noqa: RUF001  (each language's own letters and punctuation, on purpose)
"""The few words Bloop's offline tools add to a lesson's own (a quiz's instructions and feedback,
what a video says of its code), in the languages lessons are most often written in.

The tools work without a model, so they cannot translate: in a language missing here a video
says nothing of its own and a quiz or flashcard speaks English."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Phrases:
    code_says: str  # after a code listing's heading
    equation_says: str  # before an equation read out
    check: str  # an offline quiz's title, of the lesson's title
    lesson_says: str  # feedback quoting the lesson's sentence
    right: str
    wrong: str
    swapped: str  # a false statement's feedback: `{wrong}` stands where `{term}` belongs
    which_completes: str  # before a sentence with a blank, its options below
    true_or_false: str
    fill_in: str  # before a sentence with a blank to type in
    complete: str  # a flashcard's front, before its sentence with a blank
    key_words: str  # a simplified lesson's glossary
    leads_to: str  # a diagram's arrow read out: `{a}` leads to `{b}`


PHRASES = {
    "en": Phrases("here it is in code", "The equation reads", "Check: {}",
                  "The lesson says: {}", "Right.", "No.",
                  'It is false: "{wrong}" is in place of "{term}".',
                  "Which completes the sentence?", "True or false?", "Fill in the blank:",
                  "Complete:", "Key words:", "{a} leads to {b}"),
    "fr": Phrases("le voici en code", "L'équation s'écrit", "Vérification : {}",
                  "La leçon dit : {}", "Exact.", "Non.",
                  "C'est faux : « {wrong} » est à la place de « {term} ».",
                  "Quel mot complète la phrase ?", "Vrai ou faux ?", "Complétez le blanc :",
                  "Complétez :", "Mots clés :", "{a} mène à {b}"),
    "de": Phrases("so sieht es im Code aus", "Die Gleichung lautet", "Kontrolle: {}",
                  "In der Lektion steht: {}", "Richtig.", "Nein.",
                  "Das ist falsch: „{wrong}“ steht anstelle von „{term}“.",
                  "Was ergänzt den Satz?", "Richtig oder falsch?", "Füllen Sie die Lücke:",
                  "Ergänzen Sie:", "Schlüsselwörter:", "{a} führt zu {b}"),
    "es": Phrases("así queda en código", "La ecuación dice", "Repaso: {}",
                  "La lección dice: {}", "Correcto.", "No.",
                  "Es falso: «{wrong}» está en lugar de «{term}».",
                  "¿Qué completa la frase?", "¿Verdadero o falso?",
                  "Completa el espacio en blanco:", "Completa:", "Palabras clave:", "{a} lleva a {b}"),
    "pt": Phrases("assim fica em código", "A equação diz", "Revisão: {}",
                  "A lição diz: {}", "Correto.", "Não.",
                  'É falso: "{wrong}" está no lugar de "{term}".',
                  "O que completa a frase?", "Verdadeiro ou falso?", "Preencha a lacuna:",
                  "Complete:", "Palavras-chave:", "{a} leva a {b}"),
    "it": Phrases("ecco come appare nel codice", "L'equazione dice", "Verifica: {}",
                  "La lezione dice: {}", "Esatto.", "No.",
                  'È falso: "{wrong}" è al posto di "{term}".',
                  "Che cosa completa la frase?", "Vero o falso?", "Completa lo spazio vuoto:",
                  "Completa:", "Parole chiave:", "{a} porta a {b}"),
    "ru": Phrases("вот как это выглядит в коде", "Уравнение читается так", "Проверка: {}",
                  "В уроке сказано: {}", "Верно.", "Нет.",
                  "Это неверно: «{wrong}» стоит на месте «{term}».",
                  "Что дополняет предложение?", "Верно или неверно?", "Заполните пропуск:",
                  "Дополните:", "Ключевые слова:", "{a} ведёт к {b}"),
    "ja": Phrases("コードではこうなります", "式はこうなります", "確認：{}",
                  "レッスンにはこうあります：{}", "正解です。", "不正解です。",
                  "誤りです：「{term}」の代わりに「{wrong}」が入っています。",
                  "文を完成させる語はどれですか？", "正しいですか、誤りですか？",
                  "空欄を埋めてください：", "完成させてください：", "キーワード：", "{a}は{b}につながります"),
    "zh": Phrases("用代码写出来是这样", "方程是", "小测验：{}",
                  "课文中说：{}", "正确。", "错误。",
                  "这是错的：“{wrong}”替换了“{term}”。",
                  "哪一项能补全句子？", "判断对错：", "填空：", "补全：", "关键词：", "{a}通向{b}"),
    "hi": Phrases("कोड में यह ऐसा दिखता है", "समीकरण है", "जाँच: {}",
                  "पाठ में कहा गया है: {}", "सही।", "नहीं।",
                  'यह गलत है: "{term}" की जगह "{wrong}" है।',
                  "कौन-सा शब्द वाक्य पूरा करता है?", "सही या गलत?", "रिक्त स्थान भरें:",
                  "पूरा करें:", "मुख्य शब्द:", "{a} से {b} तक"),
    "ar": Phrases("وهذا هو في الشيفرة", "المعادلة هي", "تحقق: {}",
                  "يقول الدرس: {}", "صحيح.", "لا.",
                  'هذا خطأ: "{wrong}" في مكان "{term}".',
                  "ما الذي يكمل الجملة؟", "صح أم خطأ؟", "املأ الفراغ:", "أكمل:",
                  "كلمات مفتاحية:", "{a} يؤدي إلى {b}"),
}


def primary(language: str) -> str:
    """The language subtag of a BCP 47 tag, lower-case (`pt` of `pt-BR`)."""
    return language.split("-", 1)[0].lower()


def known(language: str) -> Phrases | None:
    """The phrases of `language` (a BCP 47 tag), None when there are none."""
    return PHRASES.get(primary(language))


def phrases(language: str) -> Phrases:
    """The phrases of `language`, else English's."""
    return known(language) or PHRASES["en"]
