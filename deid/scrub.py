"""Free-text scrubbing for attributes kept under Clean Descriptors: remove every identifying
value known from the same object and patient, then date-, phone- and ID-shaped tokens."""
from __future__ import annotations

import re

from deid.phi import PhiValues, find_term

_DATE_SHAPED = re.compile(
    r"(?<![0-9])(?:(?:19|20)\d{2}[-/.]?(?:0[1-9]|1[0-2])[-/.]?(?:0[1-9]|[12]\d|3[01])"
    r"|(?:0?[1-9]|[12]\d|3[01])[-/.](?:0?[1-9]|1[0-2])[-/.](?:19|20)?\d{2}"
    r"|(?:0?[1-9]|1[0-2])[-/.](?:0?[1-9]|[12]\d|3[01])[-/.](?:19|20)?\d{2}"
    r"|\d{1,2}[ -]?(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*[ -]?(?:19|20)?\d{2})(?![0-9])",
    re.IGNORECASE,
)
_PHONE_SHAPED = re.compile(r"(?<![\w.])\+?\(?\d{2,4}\)?[\s.-]\d{2,4}[\s.-]\d{3,5}(?![\w.])")
_ID_SHAPED = re.compile(r"(?<![\w.])(?=[A-Za-z\-]*\d)(?:[A-Za-z]{0,4}[-#]?\d{5,}[A-Za-z0-9]*)(?![\w.])")
_SPACES = re.compile(r"\s{2,}")


def scrub_text(value: str, phi: PhiValues, terms: list[tuple[str, str, bool]] | None = None) -> tuple[str, int]:
    """Return (scrubbed value, number of removals). Removed spans are cut out, not starred, so a
    cleaned SeriesDescription stays readable for series classification."""
    if not value:
        return value, 0
    n = 0
    out = value
    low = out.lower()
    for term, _kw, whole in terms if terms is not None else phi.terms():
        if term not in low:
            continue
        i = find_term(low, term, whole)
        while i != -1:
            out = out[:i] + out[i + len(term):]
            low = low[:i] + low[i + len(term):]
            n += 1
            i = find_term(low, term, whole, i)
    for pattern in (_DATE_SHAPED, _PHONE_SHAPED, _ID_SHAPED):
        out, k = pattern.subn("", out)
        n += k
    if n:
        out = _SPACES.sub(" ", out).strip(" ,;:-_^/")
    return out, n


# --- comments: free text that may name people who appear nowhere else ---------------------------
_NAME_TOKEN = r"(?:[A-Z]\.|[A-Z][\w'\u2019]*(?:-[A-Z][\w'\u2019]*)*)"
#: name particles between the capitalised words of one name ("Van der Berg", "Maria da Silva")
_PARTICLES = r"(?:van|von|der|den|de|da|di|du|del|della|dos|das|le|la|ter|ten|bin|ibn|al|el)"
_NAMES = rf"{_NAME_TOKEN}(?:[ \t]+(?:{_PARTICLES}[ \t]+)*{_NAME_TOKEN}){{0,2}}"
_TITLES = (r"Mr|Mrs|Ms|Miss|Mx|Dr|Drs|Prof|Professor|Doctor|Sr|Sister|Nurse|Matron|Rev|Revd|Reverend|"
           r"Fr|Father|Sir|Dame|Lady|Lord|Capt|Captain|Col|Colonel|Major|Sgt|Sergeant|Rabbi|Imam|Pastor")
_RELATIONS = (r"lives|living|lived|stays|staying|resides|residing)\s+with|"
              r"(?:accompanied|escorted|attended|brought|collected|referred|seen|reviewed|reported|"
              r"examined|scanned|consented|discussed|called|phoned|informed)\s+by|"
              r"(?:next\s+of\s+kin|nok|contact|carer|caregiver|guardian|wife|husband|partner|spouse|son|"
              r"daughter|mother|father|mum|mom|dad|brother|sister|sibling|aunt|uncle|niece|nephew|cousin|"
              r"grandson|granddaughter|grandmother|grandfather|grandma|grandpa|friend|neighbour|neighbor|"
              r"fianc[eé]e?|widow|widower|boyfriend|girlfriend|named|called|care\s+of|c/o|attn")
#: a title and the name after it: "Dr Okafor", "Mrs J. Smith" (the first word may be lower case)
_TITLE_NAME = re.compile(rf"(?<![\w])(?i:{_TITLES})\b\.?[ \t]*(?P<name>{_NAMES}|[a-z][\w'\u2019-]+)")
#: a relation or a person-shaped phrase and the capitalised name after it: "lives with Margaret",
#: "wife: Anne Marie", "referred by Okafor"
_RELATION_NAME = re.compile(rf"(?<![\w])(?i:(?:{_RELATIONS}))(?:'s)?\b(?P<sep>[ \t]*[:,(-]?[ \t]*(?:(?i:is|was)[ \t]+)?)(?P<name>{_NAMES})")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_URL = re.compile(r"(?i:\b(?:https?://|www\.)\S+)")
#: street designators: full words in any case, abbreviations only as written in addresses ("CT"
#: is a modality, "Dr" a title)
_STREET = (r"(?i:street|road|avenue|lane|drive|court|close|crescent|terrace|place|row|boulevard|square|"
           r"gardens|grove|hill|park|mews|walk|parade|highway|circle|parkway|alley|green|rise|view|vale|"
           r"wharf|quay|way)|St|Rd|Ave|Ln|Dr|Ct|Cl|Cres|Pl|Blvd|Sq|Gdns|Hwy|Cir|Pkwy|ST|RD|AVE")
#: a house number, up to four capitalised words, a street designator and the town after a comma:
#: "12 Baker Street, Manchester", "4B Old Mill Row"
_ADDRESS = re.compile(
    rf"(?<![\w])\d{{1,5}}[A-Za-z]?,?[ \t]+(?:[A-Z][\w'\u2019-]*[ \t]+){{1,4}}(?:{_STREET})\b\.?"
    rf"(?:,[ \t]*[A-Z][\w'\u2019-]+(?:[ \t]+[A-Z][\w'\u2019-]+)?)?"
)
_PO_BOX = re.compile(r"(?i:\b(?:p\.?\s?o\.?\s?box|flat|apt|apartment|unit|suite)\s*#?\d+\w*)")
#: UK postcodes (M1 2AB, SW1A 1AA); US ZIP codes are 5-digit numbers, removed with long numbers
_POSTCODE = re.compile(r"(?<![\w])[A-Z]{1,2}\d[A-Z\d]?[ \t]?\d[A-Z]{2}(?![\w])")
_MONTHS = r"jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?"
#: dates with the month in words: "March 3, 2021", "3rd of March 2021", "Mar 2021"
_WORD_DATE = re.compile(
    rf"(?i:(?<![\w])(?:(?:\d{{1,2}}(?:st|nd|rd|th)?[ \t]+(?:of[ \t]+)?)(?:{_MONTHS})\.?(?:,?[ \t]+\d{{2,4}})?"
    rf"|(?:{_MONTHS})\.?[ \t]+\d{{1,2}}(?:st|nd|rd|th)?(?:,?[ \t]+\d{{4}})?|(?:{_MONTHS})\.?[ \t]+\d{{4}})(?![\w]))"
)
#: any run of five or more digits, whatever surrounds it (record, NHS, insurance, ZIP numbers)
_LONG_NUMBER = re.compile(r"\d(?:[ \t.-]?\d){4,}")
#: a word that may be a name: letters (apostrophes, hyphens inside), not touching digits
_WORD_TOKEN = re.compile(r"(?<![\w])[A-Za-z][A-Za-z'\u2019]*(?:-[A-Za-z][A-Za-z'\u2019]*)*(?![\w])")
_COMMENT_PATTERNS = (_EMAIL, _URL, _PO_BOX, _POSTCODE, _ADDRESS, _WORD_DATE, _LONG_NUMBER)


def _unknown_name(word: str) -> bool:
    """A capitalised word in no vocabulary, or a proper noun of the word list in any case."""
    from deid.vocabulary import is_known_word, is_proper_noun

    for part in word.replace("\u2019", "'").split("-"):
        if part.endswith("'s"):
            part = part[:-2]
        part = part.strip("'")
        low = part.lower()
        if len(low) < 3 or is_known_word(low):
            continue
        if part[:1].isupper() or is_proper_noun(low):
            return True
    return False


def _drop_name(m: re.Match) -> str:
    """Remove a name after a title or relation; a lower-case word after a title only when it is
    no English word ("seen by dr okafor", not "Dr on call")."""
    from deid.vocabulary import is_known_word

    name = m.group("name")
    if name[:1].islower() and is_known_word(name.lower()):
        return m.group(0)
    if m.re is _TITLE_NAME:
        return " "  # the title goes with the name ("seen by Dr Okafor" -> "seen by")
    start = m.start("name") - m.start(0)
    return m.group(0)[:start].rstrip(" \t:,(-") + " "


def clean_comment(value: str, phi: PhiValues, terms: list[tuple[str, str, bool]] | None = None) -> tuple[str, int]:
    """Clean a kept comment (PatientComments, AdditionalPatientHistory... under ``clean_comments``):
    the object's known values and shaped tokens as :func:`scrub_text`, then what identifies people
    the object does not name elsewhere: a title or a relation and the name after it, e-mail and web
    addresses, postal addresses and postcodes, dates with the month in words, numbers of 5+ digits,
    and every capitalised word that is no English or medical word (see ``deid.vocabulary``)."""
    if not value:
        return value, 0
    out, n = scrub_text(value, phi, terms)
    for pattern in _COMMENT_PATTERNS:
        out, k = pattern.subn(" ", out)
        n += k
    for pattern in (_TITLE_NAME, _RELATION_NAME):
        new = pattern.sub(_drop_name, out)
        if new != out:
            n += 1
            out = new
    words = 0

    def word(m: re.Match) -> str:
        nonlocal words
        if _unknown_name(m.group(0)):
            words += 1
            return ""
        return m.group(0)

    out = _WORD_TOKEN.sub(word, out)
    n += words
    if n:
        out = _SPACES.sub(" ", out).strip(" ,;:-_^/")
        out = re.sub(r"\s+([,.;:])", r"\1", out)
    return out, n
