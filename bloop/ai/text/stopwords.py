# ruff: noqa: RUF001  (each language's own letters, on purpose)
"""Words the offline generator never takes for a lesson's terms: a language's articles,
pronouns, prepositions, conjunctions, auxiliaries and commonest adverbs, in the languages of
bloop/ai/phrases.py that put spaces between words (Chinese and Japanese have their own rule).
English's are always among them: lessons in any language name code and quote English."""

from __future__ import annotations

from bloop.ai.phrases import primary

_WORDS = {
    "en": """
a about above after again against all also an and any are as at be because been before being
below between both but by can could did do does doing down during each either else every few
for from further had has have having he her here hers him his how however i if in into is it
its itself just least less let like made make many may me might more most much must my neither
no nor not now of off often on once one only or other our out over own rather same shall she
should since so some such than that the their them then there these they this those though
through thus to too two under until up upon us very was we were what when where whether which
while who whom whose why will with within without would yet you your
""",
    "fr": """
à afin ainsi alors après au aucun aucune aussi autre autres aux avant avec avoir bien c ça car
ce ceci cela celle celles celui ces cet cette chaque chez comme comment d dans de depuis des
deux donc dont du elle elles en encore entre est et été être eux fait faire fois font il ils
j je jamais l la le les leur leurs lors lorsque lui m mais me même mêmes moi moins mon n ne ni
nos notre nous on ont ou où par parce pas pendant peu peut peuvent plus plusieurs pour
pourquoi puis qu quand que quel quelle quelles quels qui quoi s sa sans se selon ses si sinon
soit son sont sous souvent sur t ta te tel telle tes toi ton toujours tous tout toute toutes
très tu un une vers voici voilà vos votre vous y
""",
    "de": """
ab aber alle allem allen aller alles als also am an andere anderen anderer anderes auch auf
aus bei beim bereits bin bis bist bleibt da dabei dadurch dafür damit dann daran darauf daraus
darin das dass davon dazu dein deine dem den denen denn der deren des dessen dich die dies diese
diesem diesen dieser dieses dir doch dort du durch ein eine einem einen einer eines einige er
es etwa euch euer für gegen gibt hat hatte hätte haben hier ich ihm ihn ihnen ihr ihre ihrem
ihren ihrer ihres im immer in indem ins ist ja je jede jedem jeden jeder jedes jetzt kann
kein keine keinem keinen keiner können könnte man mehr mein meine mit muss müssen nach nicht
noch nun nur ob oder ohne schon sehr sein seine seinem seinen seiner sich sie sind so solche
soll sollte sondern sowie über um und uns unser unter viel viele vom von vor wann war waren
warum was weil welche welchem welchen welcher welches wenn wer werden wie wieder will wir wird
wo wurde wurden zu zum zur zwar zwei zwischen
""",
    "es": """
a al algo algún alguna algunas alguno algunos ante antes así aun aunque bien cada como cómo
con contra cual cuál cuales cuando cuándo de del desde donde dónde durante e el él ella ellas
ellos en entonces entre era es esa esas ese eso esos esta está están estas este esto estos
fue fueron ha había han hasta hay la las le les lo los más me mi mientras mis mismo misma muy
mucho muchos nada ni no nos nosotros o otra otras otro otros para pero poco por porque pues
puede pueden que qué quien quién se sea según ser si sí siempre sin sino sobre solo sólo son
su sus también tan tanto te tiene tienen todo toda todas todos tu tus u un una unas uno unos
usted y ya
""",
    "pt": """
a à ao aos as às até com como cada da das de dela dele deles depois do dos e é ela elas ele
eles em entre era essa essas esse esses esta está estão estas este estes eu foi for foram há
isso isto já la lhe lhes mais mas me mesmo mesma meu minha muito muitos na nas nem no nos nós
num numa o os ou para pela pelas pelo pelos pode podem por porque pois quando que qual quais
quem se sem ser será seu seus sua suas são só sobre também tem têm tinha todo toda todos todas
tu um uma umas uns você vocês
""",
    "it": """
a ad agli ai al alla alle allo anche ancora avere che chi ci come con cosa cui da dagli dai dal
dalla dalle degli dei del della delle dello di dove e è ed era essere esso essa fa fino gli ha
hanno ho i il in io la le lei li lo loro lui ma mentre mi mio molto molti ne negli nei nel
nella nelle nello no noi non nostro o ogni per perché però più poi può possono prima qual
quale quali quando quanto quella quelle quelli quello questa queste questi questo se sei si
sia sono sotto su sua sue sui sul sulla suo suoi tra tu tutta tutte tutti tutto un una uno
voi
""",
    "ru": """
а без более бы был была были было быть в вам вас весь во вот все всё всего всех вы где да даже
для до его ее её если есть ещё же за здесь и из или им их к как какая какие какой когда
которая которое которой которые который которых кто ли либо между менее меня мне может можно
мы на над надо наш не него нее неё нет ни них но ну о об однако он она они оно от очень по
под после потому почти при про раз с свой своей свои себя со так также такой там тем тех то
тогда того тоже только том тот три ты у уже хотя чего чем через что чтобы эта эти это этого
этой этом этот эту я
""",
    "hi": """
अगर अपना अपनी अपने अब और इन इस इसका इसकी इसके इसे उन उनका उनकी उनके उस उसका उसकी उसके उसे
एक ऐसा ऐसे कर करता करती करते करना करने कहा का कि किया किसी की कुछ के को कोई क्या गई गया
जब जा जाता जाती जाते जैसे जो तक तब तो था थी थे दिया दो द्वारा न नहीं ने पर फिर बहुत भी में
यदि यह या ये रहा रही रहे लिए लेकिन वह वे सकता सकती सकते सभी साथ से हम हर ही है हैं हो
होगा होता होती होते
""",
    "ar": """
أن إن أو أي إذا إلى التي الذي الذين ثم حتى حيث ذلك عن عند عندما على غير في فقط قبل قد كان
كانت كل كما لا لأن لم لن لها له ما مع من منها هذا هذه هو هي هم و يكون تكون يمكن بعد بين بعض
أيضا أيضًا جدا لكن به بها فيها عليها تلك هناك
""",
}
ENGLISH = frozenset(_WORDS["en"].split())
_SETS = {lang: ENGLISH | frozenset(words.split()) for lang, words in _WORDS.items()}


def stopwords(language: str) -> frozenset[str]:
    """The stopwords of a lesson in `language` (a BCP 47 tag): English's and its own."""
    return _SETS.get(primary(language), ENGLISH)
