"""Which function tools the user's words ask for, and the arguments to call them with: deterministic.

**Words.** A text is split into words (:func:`~vlab.emulator.text_words.tokens`), lower-cased and
stemmed (:func:`~vlab.emulator.text_words.stem`); stop words (:data:`STOP_WORDS`: function words,
"get", "please", "current", times like "today") and numbers never count.

**A tool's vocabulary.** The words of its name (``get_current_weather`` → get, current, weather) weigh
:data:`NAME_WEIGHT` (3), the words of its description :data:`DESCRIPTION_WEIGHT` (2), the words of its
parameters' names, descriptions and enum values :data:`PARAMETER_WEIGHT` (1); a word found in several
places keeps its largest weight.

**Score of a tool for a text.** Each distinct content word of the text adds its best match:

* the same stem in the vocabulary: that word's weight;
* a synonym (both in one group of :data:`SYNONYMS`: weather/temperature/forecast/rain…,
  time/clock/hour…): :data:`LOOSE` (0.75) × the weight;
* a recognition error: a word of 5 or more letters one letter (inserted, deleted or replaced) away
  from a vocabulary word or a synonym: :data:`LOOSE` × the weight.

**Choice.** The text is cut into clauses at ``and``, ``also``, ``then``, ``plus`` and punctuation. A
clause asks for its best tool (ties: the tool listed first) when that tool scores at least
:data:`THRESHOLD` (2.0): a word of its name or a synonym of one, an exact word of its description, or
two parameter words. The calls are the tools the clauses ask for, each once, in the order asked; when no
single clause asks for one, the whole text is scored as one clause. ``parallel_tool_calls: false``
keeps only the first call. ``tool_choice`` ``"none"`` calls nothing; ``"required"`` calls the best tool
even below the threshold; a named tool (``{"type": "function", "name": …}``) is always that one.

**Arguments** (:func:`arguments`), from the clause that asked for the tool, filled from the JSON schema
(``type``, ``required``, ``enum``, ``properties``, ``minimum``/``maximum``, ``default``):

* a parameter with an ``enum``: the listed value the text mentions (stem or one-letter match); when
  none is mentioned, the first value if it is required, else it is left out;
* a string: the *phrases* the user gave, in order, one per parameter (required parameters first):

  1. the words after ``in``, ``at``, ``for``, ``near``, ``around``, ``from``, ``to``, ``of`` or ``when``
     (PocketSphinx often hears a short "in" as "when"), skipping an article: in a text with capitals the
     run of capitalised words ("in New York today" → "New York"), or up to three lower-case content
     words ("for pizza places"); in a text without capitals (a recognizer's transcript) one word, two
     after a place prefix such as "new", "san" or "los" (:data:`PLACE_PREFIXES`), title-cased ("when
     seattle debate" → "Seattle"); a phrase never starts with a stop word, a number or a *tool word*
     (:meth:`Vocabulary.claims`: a word of the name or description, a synonym of one, an enum value;
     words only a parameter's description mentions, such as "UTC", stay free to be values);
  2. for a required parameter only: the last run of capitalised words that are not stop words or tool
     words, then the first content word that is not a tool word (title-cased in a text without
     capitals), and last the whole clause;

  an optional string parameter takes only a phrase of the first kind. A typed identifier joined by
  slashes (``contoso/app``, a path, a URL) is one value, taken whole before the phrases of the first kind,
  and its words are never part of another phrase or a fallback;
* an integer or number: the numbers said (:func:`~vlab.emulator.text_words.numbers`), in order,
  clamped to ``minimum``/``maximum``; a required one with none said gets its ``default``, its
  ``minimum`` or 0;
* a boolean: true when the words of its name are in the text; else false if required, left out if not;
* an array: the listed ``items.enum`` values mentioned, or ``[]`` if required; an object: filled the same
  way if required.

Optional parameters the user did not give are left out, so the JSON validates against the schema.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from vlab.emulator.text_words import NUMBER_WORDS, Token, name_words, numbers, one_edit, stem, tokens

NAME_WEIGHT: Final = 3.0
"""Weight of a word of the tool's name."""
DESCRIPTION_WEIGHT: Final = 2.0
"""Weight of a word of the tool's description."""
PARAMETER_WEIGHT: Final = 1.0
"""Weight of a word of a parameter's name, description or enum values."""
LOOSE: Final = 0.75
"""Factor for a synonym or a one-letter recognition error instead of the word itself."""
THRESHOLD: Final = 2.0
"""Lowest score at which a clause asks for a tool (``tool_choice: "auto"``)."""
MIN_FUZZY_LETTERS: Final = 5
"""Only words this long may differ by one letter (shorter ones have too many neighbours)."""

_SYNONYM_WORDS: Final = (
    "weather temperature forecast rain snow sunny sun cloud cloudy wind windy storm humid humidity "
    "degree hot cold warm umbrella celsius fahrenheit climate",
    "time clock hour minute timezone zone date o'clock",
    "joke funny laugh humor pun",
    "search find lookup look query seek",
    "music song play playlist tune",
    "message email mail send sms",
    "call phone dial ring",
    "book reserve reservation booking appointment schedule",
    "light lamp bulb brightness",
    "news headline",
    "stock share price market quote",
    "direction route navigate map",
    "alarm timer remind reminder wake",
    "order buy purchase cart",
    "location city place town country address",
)
SYNONYMS: Final[tuple[frozenset[str], ...]] = tuple(
    frozenset(stem(w) for w in group.split()) for group in _SYNONYM_WORDS
)
"""Groups of stems that mean the same thing to the tool scorer."""
_CONCEPT: Final[dict[str, int]] = {}
for _index, _group in enumerate(SYNONYMS):
    for _word in sorted(_group):
        _CONCEPT.setdefault(_word, _index)

STOP_WORDS: Final = frozenset(
    """a an the is are was were be been am it its it's what what's whats which who whom whose how when
    where why do does did done can could would will shall should may might must i i'm me my mine you
    your yours we our ours us they them their he she him his her this that these those there here of in
    on at for to from by with about into onto like and or but not no yes so if then than please thanks
    thank hi hello hey tell say said give show let know get got want need some any all just now today
    tonight tomorrow yesterday morning afternoon evening night weekend later soon right current currently
    given e g eg etc use using up out much many more most very really also plus okay ok well as near
    around again too going go have has had day week month year""".split()
)
"""Words that never count towards a tool or become an argument."""
_STOP_STEMS: Final = frozenset(stem(w) for w in STOP_WORDS)

CUES: Final = ("in", "at", "for", "near", "around", "from", "to", "of", "when")
"""Words after which the user names a value ("in Seattle"); ``when`` is a common mis-hearing of "in"."""
_ARTICLES: Final = frozenset({"the", "a", "an", "my", "our", "your"})
PLACE_PREFIXES: Final = frozenset(
    "new san santa los las saint st fort port salt rio buenos hong kuala tel sao el la le".split()
)
"""First words of two-word place names, read as one value in a text without capitals."""
_MAX_PHRASE_WORDS: Final = 3
_COMPOUND: Final = re.compile(r"[A-Za-z][\w+.-]*://[\w./:?=&%-]*\w|[\w.-]*\w/[\w./:-]*\w")
"""A typed identifier joined by slashes: ``owner/repo``, a path, a URL (a sentence's full stop left out)."""
_CLAUSE_SPLIT: Final = re.compile(r"[,;.!?]+(?=\s|$)|\b(?:and|also|then|plus)\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """The weighted words of one tool."""

    stems: Mapping[str, float]
    """Weight of each stem."""
    concepts: Mapping[int, float]
    """Largest weight of a stem in each synonym group (by index in :data:`SYNONYMS`)."""
    values: frozenset[str]
    """Stems of the parameters' enum values."""

    @classmethod
    def of(cls, tool: Mapping[str, Any]) -> Vocabulary:
        """The vocabulary of a function tool (its name, description and parameters)."""
        stems: dict[str, float] = {}
        values: set[str] = set()

        def add(words: Iterable[str], weight: float) -> None:
            for word in words:
                s = stem(word)
                if s not in _STOP_STEMS and word not in STOP_WORDS and not _is_number(word):
                    stems[s] = max(stems.get(s, 0.0), weight)

        add(name_words(str(tool.get("name") or "")), NAME_WEIGHT)
        add(_lower_words(str(tool.get("description") or "")), DESCRIPTION_WEIGHT)
        params = _schema(tool.get("parameters"))
        for name, prop in _schema(params.get("properties")).items():
            prop = _schema(prop)
            add(name_words(str(name)), PARAMETER_WEIGHT)
            add(_lower_words(str(prop.get("description") or "")), PARAMETER_WEIGHT)
            enum = _lower_words(" ".join(str(v) for v in prop.get("enum") or ()))
            add(enum, PARAMETER_WEIGHT)
            values.update(stem(w) for w in enum)
        concepts: dict[int, float] = {}
        for s, weight in stems.items():
            if s in _CONCEPT:
                concepts[_CONCEPT[s]] = max(concepts.get(_CONCEPT[s], 0.0), weight)
        return cls(stems, concepts, frozenset(values))

    def match(self, word: str) -> float:
        """How much one (lower-case) word of the user's counts for this tool."""
        s = stem(word)
        best = self.stems.get(s, 0.0)
        if s in _CONCEPT:
            best = max(best, LOOSE * self.concepts.get(_CONCEPT[s], 0.0))
        if best == 0.0 and len(word) >= MIN_FUZZY_LETTERS:
            for v, weight in self.stems.items():
                if len(v) >= MIN_FUZZY_LETTERS - 1 and one_edit(s, v):
                    best = max(best, LOOSE * weight)
            for v, index in _CONCEPT.items():
                if len(v) >= MIN_FUZZY_LETTERS - 1 and one_edit(s, v):
                    best = max(best, LOOSE * self.concepts.get(index, 0.0))
        return best

    def claims(self, word: str) -> bool:
        """Whether a word is what the tool is about (its name or description, or an enum value), not a value.

        Words only a parameter's description mentions ("the city and state, e.g. 'San Francisco'", "e.g.
        'UTC'") stay free to be values.
        """
        return stem(word) in self.values or self.match(word) >= LOOSE * DESCRIPTION_WEIGHT


def _schema(value: Any) -> Mapping[str, Any]:
    """A schema object, or an empty one for anything else (a client may send any JSON)."""
    return value if isinstance(value, Mapping) else {}


def _lower_words(text: str) -> list[str]:
    return [t.lower for t in tokens(text)]


def _is_number(word: str) -> bool:
    return word in NUMBER_WORDS or word[:1].isdigit()


def _content(tok: Token) -> bool:
    return tok.lower not in STOP_WORDS and stem(tok.lower) not in _STOP_STEMS and not _is_number(tok.lower)


def score(tool: Mapping[str, Any], text: str, vocabulary: Vocabulary | None = None) -> float:
    """The tool's score for ``text`` (see the module docstring)."""
    vocab = vocabulary or Vocabulary.of(tool)
    seen: set[str] = set()
    total = 0.0
    for tok in tokens(text):
        s = stem(tok.lower)
        if s in seen or not _content(tok):
            continue
        seen.add(s)
        total += vocab.match(tok.lower)
    return total


def clauses(text: str) -> list[str]:
    """``text`` cut at ``and``, ``also``, ``then``, ``plus`` and punctuation (empty pieces dropped)."""
    return [c.strip() for c in _CLAUSE_SPLIT.split(text) if c and c.strip()]


def _forced_name(tool_choice: Any) -> str | None:
    if not isinstance(tool_choice, Mapping):
        return None
    name = tool_choice.get("name")
    if name is None and isinstance(tool_choice.get("function"), Mapping):
        name = tool_choice["function"].get("name")
    return str(name) if name else None


def choose(
    tools: Sequence[Mapping[str, Any]], tool_choice: Any, text: str, *, parallel: bool = True
) -> list[tuple[Mapping[str, Any], dict[str, Any]]]:
    """The function calls ``text`` asks for: ``(tool, arguments)`` pairs, in the order asked.

    Args:
        tools: The session's (or response's) tools; only ``type: function`` tools with a name count.
        tool_choice: ``"auto"``, ``"none"``, ``"required"`` or a named tool.
        text: The user's words.
        parallel: Whether several calls may be made (``parallel_tool_calls``).
    """
    functions = [t for t in tools if t.get("type") == "function" and t.get("name")]
    if not functions or tool_choice == "none":
        return []
    vocabs = [Vocabulary.of(t) for t in functions]
    pieces = clauses(text) or [text]

    def best(piece: str) -> tuple[float, int]:
        scores = [score(t, piece, v) for t, v in zip(functions, vocabs, strict=True)]
        top = max(scores)
        return top, scores.index(top)

    forced = _forced_name(tool_choice)
    if forced is not None:
        named = [(t, v) for t, v in zip(functions, vocabs, strict=True) if t["name"] == forced]
        if not named:
            return []
        tool, vocab = named[0]
        piece = max(pieces, key=lambda p: score(tool, p, vocab))
        return [(tool, arguments(tool, piece, text, vocab))]
    picked: list[tuple[int, str]] = []
    for piece in pieces:
        top, index = best(piece)
        if top >= THRESHOLD and index not in (i for i, _ in picked):
            picked.append((index, piece))
    if not picked:
        top, index = best(text)
        if top >= THRESHOLD or tool_choice == "required":
            picked.append((index, text))
    if not parallel:
        picked = picked[:1]
    return [(functions[i], arguments(functions[i], piece, text, vocabs[i])) for i, piece in picked]


# --- arguments ------------------------------------------------------------------------------------------


def arguments(
    tool: Mapping[str, Any], clause: str, text: str | None = None, vocabulary: Vocabulary | None = None
) -> dict[str, Any]:
    """Arguments for a call of ``tool`` asked for by ``clause`` (of the user's whole ``text``).

    Returns:
        A JSON object that validates against the tool's ``parameters`` schema (see the module docstring
        for the subset of JSON Schema it reads).
    """
    vocab = vocabulary or Vocabulary.of(tool)
    return _object(_schema(tool.get("parameters")), clause, text or clause, vocab)


def _type(prop: Mapping[str, Any]) -> str:
    kind = prop.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None and prop.get("enum"):
        first = prop["enum"][0]
        kind = {bool: "boolean", int: "integer", float: "number"}.get(type(first), "string")
    return str(kind or "string")


@dataclass(slots=True)
class _Values:
    """What the user said that arguments can take, each value taken once (nested objects share it)."""

    clause: str
    text: str
    phrases: list[str]
    fallbacks: list[str]
    numbers: list[float]
    stems: set[str]


def _object(schema: Mapping[str, Any], clause: str, text: str, vocab: Vocabulary) -> dict[str, Any]:
    values = _Values(
        clause,
        text,
        _phrases(clause, vocab),
        _fallbacks(clause, vocab),
        numbers(clause) or numbers(text),
        {stem(t.lower) for t in tokens(clause)},
    )
    return _fill(schema, values)


def _fill(schema: Mapping[str, Any], said: _Values) -> dict[str, Any]:
    props = _schema(schema.get("properties"))
    required = [str(r) for r in schema.get("required") or () if isinstance(r, str)]
    order = required + [name for name in props if name not in required]
    out: dict[str, Any] = {}
    for name in order:
        prop = _schema(props.get(name))
        needed = name in required
        kind = _type(prop)
        if prop.get("enum"):
            value = next((v for v in prop["enum"] if _mentioned(str(v), said.stems)), None)
            if value is not None or needed:
                out[name] = value if value is not None else prop["enum"][0]
        elif kind == "string":
            if said.phrases:
                out[name] = said.phrases.pop(0)
            elif needed:
                whole = said.clause.strip(" .?!") or said.text.strip(" .?!")
                out[name] = said.fallbacks.pop(0) if said.fallbacks else whole
        elif kind in ("integer", "number"):
            if said.numbers or needed:
                number = said.numbers.pop(0) if said.numbers else None
                out[name] = _number(prop, number, integer=kind == "integer")
        elif kind == "boolean":
            given = _mentioned(str(name), said.stems)
            if given or needed:
                out[name] = given
        elif kind == "array":
            items = prop.get("items")
            listed = items.get("enum") if isinstance(items, Mapping) else None
            chosen = [v for v in listed or () if _mentioned(str(v), said.stems)]
            if chosen or needed:
                out[name] = chosen
        elif kind == "object":
            if needed:
                out[name] = _fill(prop, said)
        elif needed:
            out[name] = None
    return out


def _mentioned(value: str, stems: set[str]) -> bool:
    """Whether every word of ``value`` is in the text (by stem, or one letter off for long words)."""
    words = [stem(w) for w in name_words(value)]
    return bool(words) and all(
        w in stems or (len(w) >= MIN_FUZZY_LETTERS - 1 and any(one_edit(w, s) for s in stems)) for w in words
    )


def _number(prop: Mapping[str, Any], value: float | None, *, integer: bool) -> float | int:
    if value is None:
        default = prop.get("default")
        value = float(default if isinstance(default, (int, float)) else prop.get("minimum", 0))
    low, high = prop.get("minimum"), prop.get("maximum")
    if isinstance(low, (int, float)):
        value = max(value, float(low))
    if isinstance(high, (int, float)):
        value = min(value, float(high))
    return int(round(value)) if integer else value


def _cased(toks: Sequence[Token]) -> bool:
    """Whether a text has capitals beyond a sentence's first word (typed text, not a transcript)."""
    return any(t.text[0].isupper() and t.lower != "i" for t in toks[1:])


def _value_word(tok: Token, vocab: Vocabulary) -> bool:
    return _content(tok) and tok.lower not in CUES and not vocab.claims(tok.lower)


def _compounds(clause: str) -> list[re.Match[str]]:
    return list(_COMPOUND.finditer(clause))


def _compound_at(compounds: Sequence[re.Match[str]], tok: Token) -> str | None:
    return next((m.group() for m in compounds if m.start() <= tok.start < m.end()), None)


def _phrases(clause: str, vocab: Vocabulary) -> list[str]:
    toks = tokens(clause)
    cased = _cased(toks)
    compounds = _compounds(clause)
    found: list[str] = list(dict.fromkeys(m.group() for m in compounds))
    toks = [t for t in toks if not _compound_at(compounds, t)]  # the words outside them
    for i, tok in enumerate(toks):
        if tok.lower not in CUES:
            continue
        j = i + 1
        while j < len(toks) and toks[j].lower in _ARTICLES:
            j += 1
        if j >= len(toks) or not _value_word(toks[j], vocab):
            continue
        if cased and toks[j].text[0].isupper():
            run = _run(toks, j, lambda t: t.text[0].isupper() and t.lower not in STOP_WORDS)
        elif cased:
            run = _run(toks, j, lambda t: _value_word(t, vocab))[:_MAX_PHRASE_WORDS]
        else:
            two = toks[j].lower in PLACE_PREFIXES and j + 1 < len(toks) and _value_word(toks[j + 1], vocab)
            run = toks[j : j + (2 if two else 1)]
        phrase = _spell(run, cased)
        if phrase not in found:
            found.append(phrase)
    return found


def _fallbacks(clause: str, vocab: Vocabulary) -> list[str]:
    toks = tokens(clause)
    cased = _cased(toks)
    compounds = _compounds(clause)  # already phrases
    out: list[str] = []
    toks = [t for t in toks if not _compound_at(compounds, t)]  # the words outside them
    if cased:
        runs = _capital_runs(toks, vocab)
        if runs:
            out.append(_spell(runs[-1], cased))
    first = next((t for t in toks if _value_word(t, vocab)), None)
    if first is not None:
        word = _spell([first], cased)
        if word not in out:
            out.append(word)
    return out


def _capital_runs(toks: Sequence[Token], vocab: Vocabulary) -> list[list[Token]]:
    runs: list[list[Token]] = []
    current: list[Token] = []
    for tok in toks:
        if tok.text[0].isupper() and _value_word(tok, vocab):
            current.append(tok)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return runs


def _run(toks: Sequence[Token], start: int, keep: Callable[[Token], bool]) -> list[Token]:
    end = start
    while end < len(toks) and keep(toks[end]):
        end += 1
    return list(toks[start:end])


def _spell(run: Sequence[Token], cased: bool) -> str:
    return " ".join(t.text if cased else t.text[:1].upper() + t.text[1:] for t in run)
