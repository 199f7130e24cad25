"""Caller name from a transcript: the second path beside the brain's capture_caller_name tool.

Rules rather than a model, because the cost of a wrong name is high ("Welcome
back, Fine!") and the phrasings are few: a trigger ("my name is", "I'm",
"this is", "call me", "it's", …) followed by one to three name-like words, or,
right after we asked for the name, an utterance that is nothing but a name
(fillers, a polite word, a spelling "A-N-A" and a repeat "Lopez, Maria Lopez"
around it are allowed), or a self-introduction on the phone ("Dave here",
"Karen speaking").

Precision over recall: strong triggers ("my name is") accept any non-stop
word; weak ones ("I'm", "this is", "it's") also need the word to look like a
name, meaning capitalised when the transcript has capitals at all (ASR output
does), and never a word from the stop list (verbs, adjectives, fillers,
pronouns, days…) that makes "I'm fine", "this is about my bill" or "I'm
calling about…" what they are.
"""

from __future__ import annotations

import functools
import re
import tomllib
from importlib import resources

MAX_TOKENS = 3

# Trigger phrases, lowercase, apostrophes straight. Longest alternatives first.
_STRONG = [
    "my first name is", "my first name's", "first name is", "first name's",
    "my name is", "my name's", "the name is", "the name's", "name is", "name's",
    "you can call me", "just call me", "call me", "i go by", "they call me",
]
_WEAK = [
    "this is", "it is", "it's", "its", "i am", "i'm", "im", "here is", "here's",
]
# Stop words that are also given names: a name when capitalised in a cased transcript
# ("I'm Bill.") or after a strong trigger ("my name is bill"), else the word.
_ALSO_NAMES = {
    "bill", "will", "hope", "grace", "mark", "frank", "may", "june", "april", "august",
    "rose", "faith", "joy", "dawn", "summer", "grant", "pat", "sue", "art", "jack", "max",
    "ray", "rob", "bob", "guy", "rich", "chase", "lane", "page", "sky", "angel",
    "destiny", "honey", "king", "major", "miles", "mason", "parker",
}
_FILLERS = {
    "uh", "um", "umm", "uhh", "uhm", "er", "erm", "ah", "ahh", "eh", "hmm", "hm", "mm", "oh",
    "well", "yeah", "yes", "yep", "yup", "sure", "okay", "ok", "so", "like", "hi", "hello",
    "hey", "it", "its", "actually", "right", "alright", "ya",
}
_POLITE_TAIL = {"thanks", "thank", "you", "please", "here", "speaking", "again", "sir", "maam"}
_HONORIFICS = {"mr": "Mr.", "mrs": "Mrs.", "ms": "Ms.", "miss": "Miss", "dr": "Dr.",
               "doctor": "Dr."}
_PARTICLES = {"de", "la", "del", "van", "von", "da", "di", "le", "du", "der", "den", "bin",
              "al", "el", "dos", "das", "st"}

_STOP = set("""
i me my mine myself you your yours yourself he him his she her hers it its itself we us our
ours they them their theirs this that these those the a an some any no not none all both each
every another other others someone somebody something anyone anybody anything nobody nothing
everyone everybody everything who what which where when why how whom whose whatever
about above across after again against along among around at before behind below beneath
beside between beyond by down during for from in inside into near of off on onto out outside
over past regarding re since through throughout till to toward towards under until up upon
with within without and or but nor so yet because if than then as though although while
unless whether like via per plus versus vs
am is are was were be been being have has had having do does did doing done will would shall
should can could may might must need needs needed get gets got gotten getting go goes going
gone went come comes coming came call calls calling called phone phoning ring ringing reach
reaching returning return following follow checking check looking look wondering wonder trying
try hoping hope asking ask wanting want wanted wanna gonna gotta interested interest having
making make trying leaving leave booking book scheduling schedule confirming confirm canceling
cancelling cancel paying pay waiting wait working work driving drive standing sitting staying
living moving sending send speaking talk talking telling tell saying say said says see seeing
know knowing think thinking feel feeling glad guess mean meant
just still also only really very actually probably definitely maybe perhaps quite pretty
rather too even already always never ever sometimes usually often here there now today
tomorrow tonight yesterday later soon back again currently right left away home anyway
fine good great well ok okay alright sure sorry happy sad busy free ready available
unavailable urgent important serious ridiculous crazy weird strange perfect awesome terrible
awful horrible unacceptable frustrating frustrated annoying annoyed confusing confused upset
angry worried concerned excited pleased thankful grateful curious afraid aware certain unsure
positive correct wrong true false new old late early finished lost sick ill tired hungry
allergic pregnant retired married single divorced nice bad kind better worse best worst sorry
fantastic wonderful lovely amazing excellent cool hot cold warm same different other wrong
calling hurt injured stuck locked flooding broken leaking scared fine
customer client patient owner manager tenant landlord member resident homeowner caller
mom mother dad father wife husband son daughter brother sister friend neighbor neighbour
boss assistant secretary receptionist guy lady man woman sir madam maam kid child parent
appointment bill billing account order question problem issue emergency number phone line
message voicemail company office business service plumber electrician technician contractor
regards reference invoice payment delivery meeting quote estimate repair leak water heat
one two three four five six seven eight nine ten first second third last next
monday tuesday wednesday thursday friday saturday sunday weekend week month year morning
afternoon evening night january february march september october november december
hi hello hey thanks thank please yes yeah yep no nope nah uh um er ah oh hmm
gonna wanna lemme dunno
""".split())

_PUNCT = {",", ".", "!", "?", ";", ":", "-"}
_HERE = {"here", "speaking"}
# What may follow "<name> here" in a self-introduction ("Dave here, calling about…").
_HERE_NEXT = {"calling", "from", "with", "about", "again", "and", "returning", "regarding",
              "at", "on", "i", "im", "just", "hi", "hello", "hey", "in", "for"}
_SPELL_LEAD = {"thats", "that", "is", "its", "spelled", "spelt", "spelling", "like", "as", "in"}
_SPELLED = re.compile(r"(?:[^\W\d_]-)+[^\W\d_]\.?")
_TRIGGER_RE = re.compile(
    r"(?<![\w'])(" + "|".join(re.escape(t) for t in _STRONG + _WEAK) + r")(?![\w'])"
)
_TOKEN_RE = re.compile(r"[^\W\d_]+(?:['\-][^\W\d_]+)*\.?|[.,!?;:]|\S")
_STRONG_SET = set(_STRONG)
_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "`": "'"})


def extract_name(text: str, *, after_name_question: bool = False) -> str | None:
    """The caller's name in `text`, title-cased ("Maria Lopez"), or None.

    `after_name_question`: the agent just asked for the name, so a reply that
    is only a name ("Maria.", "uh, Maria Lopez") counts too.
    """
    if not text or len(text) > 1000:
        return None
    text = text.translate(_APOSTROPHES).strip()
    cased = any(c.isupper() for c in text) and any(c.islower() for c in text)
    lower = text.lower()

    matches = list(_TRIGGER_RE.finditer(lower))
    # Strong triggers anywhere beat weak ones ("I'm calling because my name is …").
    for strong in (True, False):
        for match in matches:
            if (match.group(1) in _STRONG_SET) != strong:
                continue
            name = _name_after(text[match.end():], cased=cased, strong=strong)
            if name:
                return name
    here = _here_name(text, cased=cased)
    if here:
        return here
    if after_name_question:
        lone = None if matches else _lone_name(text, cased=cased)
        return lone or _leading_name(text, cased=cased)
    return None


def _tokens(text: str) -> list[str]:
    return _TOKEN_RE.findall(text)


def _name_after(rest: str, *, cased: bool, strong: bool) -> str | None:
    tokens = _tokens(rest)
    i = 0
    # "This is, uh, Maria": skip fillers and commas right after the trigger.
    while i < len(tokens) and (tokens[i] in ",-" or _bare(tokens[i]) in _FILLERS - {"it"}):
        i += 1
    return _collect(tokens[i:], cased=cased, strict=not strong)


def _here_name(text: str, *, cased: bool) -> str | None:
    """"Dave here", "hi, Lisa here from 4B", "Karen speaking": how people open a call."""
    tokens = _tokens(text)
    i = 0
    while i < len(tokens) and (tokens[i] in _PUNCT or _bare(tokens[i]) in _FILLERS):
        i += 1
    j = i
    if j < len(tokens) and _bare(tokens[j]) in _HONORIFICS:
        j += 1
    while j < len(tokens) and j - i < MAX_TOKENS and \
            (j == i or not tokens[j - 1].endswith(".")) and \
            _is_name_word(tokens[j].rstrip("."), cased=cased, strict=True):
        j += 1
    if j == i or j >= len(tokens) or _bare(tokens[j]) not in _HERE:
        return None
    after = tokens[j + 1] if j + 1 < len(tokens) else ""
    if after and after not in _PUNCT and _bare(after) not in _HERE_NEXT:
        return None  # "Dave here says…" is about Dave, not from him
    name = _collect(tokens[i:j], cased=cased, strict=True)
    if name is None or len(name.split()) != j - i:
        return None
    return name


def _lone_name(text: str, *, cased: bool) -> str | None:
    """The reply is only a name, in one or more pieces that agree ("Lopez, Maria Lopez")."""
    names = []
    for segment in _segments(_tokens(text)):
        while segment and _bare(segment[0]) in _FILLERS:
            segment.pop(0)
        while segment and (_bare(segment[-1]) in _POLITE_TAIL or _bare(segment[-1]) in _FILLERS):
            segment.pop()
        if not segment or _is_spelling(segment):
            continue
        if len(segment) > MAX_TOKENS + 1:
            return None
        name = _collect(segment, cased=cased, strict=True)
        # The whole piece must be the name (an honorific may add one token).
        if name is None or len(name.split()) != len(segment):
            return None
        names.append(name)
    if not names:
        return None
    best = max(names, key=lambda n: len(n.split()))
    words = set(best.split())
    if any(not set(n.split()) <= words for n in names):
        return None  # two different names: ask again rather than guess
    return best


# Words that open a new clause after a name given on its own ("Luis, I'm calling about…").
_CLAUSE_OPENERS = {"i", "im", "i'm", "we", "were", "my", "our", "calling", "and", "about",
                   "regarding", "the", "its", "it's", "this", "there", "theres"}


def _leading_name(text: str, *, cased: bool) -> str | None:
    """Right after the question, a reply that starts with only a name and then goes on
    in a new clause: "Luis, I'm calling about the water heater" → "Luis"."""
    pieces = _segments(_tokens(text))
    for k in range(1, min(len(pieces), 3)):
        rest = pieces[k]
        while rest and _bare(rest[0]) in _FILLERS - {"it", "its"}:
            rest = rest[1:]
        if rest and _bare(rest[0]) in _CLAUSE_OPENERS:
            return _lone_name(", ".join(" ".join(p) for p in pieces[:k]), cased=cased)
    return None


def _segments(tokens: list[str]) -> list[list[str]]:
    """Pieces between punctuation; a word ending in "." ends a piece unless it is "Dr."."""
    out: list[list[str]] = [[]]
    for token in tokens:
        if token in _PUNCT:
            out.append([])
            continue
        ends = token.endswith(".") and _bare(token) not in _HONORIFICS
        out[-1].append(token.rstrip(".") if ends else token)
        if ends:
            out.append([])
    pieces = [p for p in out if p]
    # Unpunctuated repeats: "lopez maria lopez" / "robert robert jones".
    if len(pieces) == 1 and len(pieces[0]) == 3:
        a, b, c = (_bare(t) for t in pieces[0])
        if a == c and a != b:
            return [pieces[0][:1], pieces[0][1:]]
        if a == b and b != c:
            return [pieces[0][:1], pieces[0][1:]]
    return pieces


def _is_spelling(segment: list[str]) -> bool:
    """"A-N-A", "that's M-O-O-R-E", "k h a n": the caller spelling what they just said."""
    words = list(segment)
    while words and _bare(words[0]) in _SPELL_LEAD:
        words.pop(0)
    if not words:
        return False
    if len(words) == 1:
        return _SPELLED.fullmatch(words[0]) is not None
    return all(len(w.rstrip(".")) == 1 and w[0].isalpha() for w in words)


def _collect(tokens: list[str], *, cased: bool, strict: bool) -> str | None:
    """Up to MAX_TOKENS name words from the start of `tokens`; None if the first is not one."""
    words: list[str] = []
    honorific = None
    if tokens and _bare(tokens[0]) in _HONORIFICS:
        honorific = _HONORIFICS[_bare(tokens[0])]
        tokens = tokens[1:]
    for token in tokens:
        if len(words) == MAX_TOKENS:
            break
        word = token.rstrip(".")
        ended = token.endswith(".") and len(word) > 1
        if not _is_name_word(word, cased=cased, strict=strict or bool(words)):
            break
        titled = _title(word)
        if titled[0].islower():  # a letter with no capital form ("ºa") is no name
            break
        words.append(titled)
        if ended:
            break
    if not words:
        return None
    if honorific:
        words.insert(0, honorific)
    return " ".join(words)


@functools.cache
def _not_names() -> frozenset[str]:
    """Profanity, interjections and trade words (not_names.toml): never a name."""
    text = resources.files(__package__).joinpath("not_names.toml").read_text("utf-8")
    data = tomllib.loads(text)
    return frozenset(w for words in data.values() for w in words)


def _is_name_word(word: str, *, cased: bool, strict: bool) -> bool:
    if len(word) < 2 or not word[0].isalpha():
        return False  # a lone letter is an initial or noise, not a name to greet
    low = word.lower()
    if low in _not_names():
        return False
    if low in _ALSO_NAMES and (not strict or (cased and word[0].isupper())):
        return True
    if low in _STOP or low in _FILLERS or low in _PARTICLES or len(word) > 30:
        return False
    if "'" in low and low.split("'")[0] in _STOP:
        return False  # "I'm", "we're", "it'll": a pronoun's contraction
    if low.endswith("'s") or low.endswith("n't"):
        return False  # "I'm Maria's mother", "it isn't"
    if strict:
        if cased and not word[0].isupper():
            return False
        if not cased and low.endswith("ing") and len(low) > 5:
            return False  # "this is regarding", "i'm wondering" in lowercase ASR
    return True


def _title(word: str) -> str:
    """"maria" → "Maria", "o'brien" → "O'Brien", "jean-luc" → "Jean-Luc"; keep "McDonald"."""
    if any(c.isupper() for c in word[1:]) and any(c.islower() for c in word):
        return word[0].upper() + word[1:]
    return re.sub(r"[^\W\d_]+", lambda m: m.group(0).capitalize(), word)


def _bare(token: str) -> str:
    return token.lower().rstrip(".").replace("'", "")
