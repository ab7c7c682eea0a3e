"""Media files name their language with an ISO 639-2 code ("fra"); Bloop's lessons carry BCP 47
tags ("fr", "pt-BR"). MP4 tracks need the three-letter terminology code."""

from __future__ import annotations

# ISO 639-1 code, then its ISO 639-2/T code, for each of the 184 languages that have both.
_PAIRS = """
aaaar ababk aeave afafr akaka amamh anarg arara asasm avava ayaym azaze babak bebel bgbul
bhbih bibis bmbam bnben bobod brbre bsbos cacat ceche chcha cocos crcre csces cuchu cvchv
cycym dadan dedeu dvdiv dzdzo eeewe elell eneng eoepo esspa etest eueus fafas ffful fifin
fjfij fofao frfra fyfry gagle gdgla glglg gngrn guguj gvglv hahau heheb hihin hohmo hrhrv
hthat huhun hyhye hzher iaina idind ieile igibo iiiii ikipk ioido isisl itita iuiku jajpn
jvjav kakat kgkon kikik kjkua kkkaz klkal kmkhm knkan kokor krkau kskas kukur kvkom kwcor
kykir lalat lbltz lglug lilim lnlin lolao ltlit lulub lvlav mgmlg mhmah mimri mkmkd mlmal
mnmon mrmar msmsa mtmlt mymya nanau nbnob ndnde nenep ngndo nlnld nnnno nonor nrnbl nvnav
nynya ococi ojoji omorm orori ososs papan pipli plpol pspus ptpor quque rmroh rnrun roron
rurus rwkin sasan scsrd sdsnd sesme sgsag sisin skslk slslv smsmo snsna sosom sqsqi srsrp
ssssw stsot susun svswe swswa tatam tetel tgtgk ththa titir tktuk tltgl tntsn toton trtur
tstso tttat twtwi tytah uguig ukukr ururd uzuzb veven vivie vovol wawln wowol xhxho yiyid
yoyor zazha zhzho zuzul
"""
_TO_639_2 = {pair[:2]: pair[2:] for pair in _PAIRS.split()}


def iso639_2(language: str) -> str:
    """The ISO 639-2 code of a BCP 47 tag's language, "und" (undetermined) when there is none:
    a two-letter subtag is looked up, a three-letter one already is such a code."""
    primary = language.split("-", 1)[0].lower()
    if len(primary) == 2:
        return _TO_639_2.get(primary, "und")
    return primary if len(primary) == 3 and primary.isascii() and primary.isalpha() else "und"
