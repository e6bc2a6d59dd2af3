"""What a question asks for, read from its parse: one ``Ask`` per question word that opens a clause of
its own ("How many X did the series identify, and who translated it?" asks two), the options of an
"A or B?" question, and which way its comparison runs.

Only the grammar of questions lives here: question words, the entity types that answer each, and the
words that say which end of a comparison wins. Nothing is taken from any corpus or test set.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from spacy.language import Language
from spacy.tokens import Doc, Span, Token

AskKind = Literal["person", "time", "place", "number", "amount", "thing"]
Order = Literal["earliest", "latest", "most", "least", ""]

# The entity types that answer each kind of ask, best first (spaCy's OntoNotes labels). "Who" is
# answered by an organisation as often as by a person ("who translated it?"); a nationality (NORP)
# answers it too rarely to outweigh the languages spaCy tags as one ("translated into French").
LABELS: dict[AskKind, tuple[str, ...]] = {
    "person": ("PERSON", "ORG"),
    "time": ("DATE", "TIME"),
    "place": ("GPE", "LOC", "FAC", "ORG"),
    "number": ("CARDINAL", "QUANTITY", "MONEY", "PERCENT", "DATE"),
    "amount": ("MONEY", "PERCENT", "QUANTITY", "CARDINAL"),
    "thing": ("PERSON", "ORG", "GPE", "NORP", "WORK_OF_ART", "EVENT", "PRODUCT", "LANGUAGE", "LAW", "FAC", "LOC",
              "DATE", "MONEY", "PERCENT", "QUANTITY", "CARDINAL"),
}
_WH_KIND: dict[str, AskKind] = {"who": "person", "whom": "person", "whose": "person", "when": "time",
                                "where": "place"}
# Which value wins a comparison: the grammar of order ("first", "earlier") and of degree ("more",
# "fewer"), including comparatives whose direction their lemma does not give ("younger" is later).
_EARLIEST = frozenset(["first", "earliest", "earlier", "before", "sooner", "older", "oldest", "elder", "eldest"])
_LATEST = frozenset(["last", "latest", "later", "after", "younger", "youngest", "newer", "newest", "recent"])
_LEAST = frozenset(["less", "least", "fewer", "fewest", "smaller", "smallest", "lower", "lowest", "shorter",
                    "shortest"])
# Nouns that only stand for a name: "what is the name of the band" asks for a band.
_NAMING_NOUNS = frozenset({"name", "title"})
_CLAUSE_DEPS = frozenset({"ROOT", "conj", "ccomp", "parataxis"})


@dataclass(frozen=True)
class Ask:
    """One thing a question asks for."""

    kind: AskKind
    text: str
    """The words of the question that ask it ("who translated it")."""
    noun: str = ""
    """What a "which X" or "what X" ask names ("language" for "what language"); empty otherwise."""
    lemmas: frozenset[str] = frozenset()
    """The lemmas of its clause's content words: where in a sentence its answer stands."""
    label: str = ""
    """The question word with what it asks about ("which start-up", "how much", "when"): how the answer
    names this part."""
    lead: str = ""
    """Words the question puts before the question word ("more than" in "more than how many"): a value
    that opens with them says them twice."""
    verb: str = ""
    """The lemma of the verb the ask's clause turns on ("produce" in "who produced ..."), empty for a
    copula: the answer is what that verb's subject, agent or object is in the passage."""

    @property
    def labels(self) -> tuple[str, ...]:
        return LABELS[self.kind]


@dataclass(frozen=True)
class Asked:
    """Everything a question asks for."""

    asks: tuple[Ask, ...]
    options: tuple[str, ...] = ()
    """For "Which ..., A or B?", the two options."""
    order: Order = ""
    """For a comparison, which value wins."""
    named: frozenset[str] = frozenset()
    """The question's own words, lower case: a value it already names does not answer it."""
    lemmas: frozenset[str] = frozenset()
    """The lemmas of the question's content words."""


def read_question(nlp: Language, question: str) -> Asked:
    """What ``question`` asks for, from ``nlp``'s parse of it."""
    doc = nlp(question.strip())
    named = frozenset(t.lower_ for t in doc if not t.is_punct)
    lemmas = frozenset(_content_lemmas(doc))
    options = _options(doc)
    asks: list[Ask] = []
    seen: set[tuple[int, AskKind]] = set()
    for token in doc:
        if token.tag_ not in ("WP", "WDT", "WRB", "WP$"):
            continue
        clause = _clause(token)
        if clause is None:
            continue  # a relative pronoun ("the film that was shot ..."): not an ask
        ask = _ask(token, clause)
        if ask is not None:
            ask = replace(ask, lead=_lead(token), label=_label(token, ask),
                          verb=clause.lemma_.lower() if clause.pos_ == "VERB" else "")
        if ask is not None and (clause.i, ask.kind) not in seen:
            seen.add((clause.i, ask.kind))
            asks.append(ask)
    return Asked(tuple(asks), options, _order(doc) if options else "", named, lemmas)


def _clause(wh: Token) -> Token | None:
    """The verb of the clause ``wh`` asks in, or None when ``wh`` is a relative pronoun ("the film that
    was shot ...", "the woman who portrayed ...").

    "What", "how many" and "which X" always ask, wherever they stand ("... formed in what year?"); so does
    a question word that ends the question ("... whose godfather is whom?").
    """
    node = wh
    while (node.pos_ not in ("VERB", "AUX") or node.dep_ in ("aux", "auxpass")) and node.head.i != node.i:
        node = node.head
    word = wh.lower_
    last = all(t.is_punct for t in wh.doc[wh.i + 1:])
    asking = word in ("what", "how") or (word == "which" and wh.dep_ == "det") or last
    # "the film that was shot ..." (relcl, acl) and "when Copley was minister" (advcl) qualify a
    # noun or a clause; they do not ask.
    if not asking and node.dep_ in ("relcl", "acl", "advcl") and wh.i > 0:
        return None
    return node


def _ask(wh: Token, clause: Token) -> Ask | None:
    word = wh.lower_
    text = _clause_text(wh, clause)
    lemmas = frozenset(_content_lemmas(_clause_tokens(clause)))
    if word == "how":
        following = wh.nbor(1) if wh.i + 1 < len(wh.doc) else None
        if following is None:
            return None
        if following.lower_ == "many":
            return Ask("number", text, _counted(following), lemmas)
        if following.lower_ == "much":
            return Ask("amount", text, "", lemmas)
        if following.pos_ in ("ADJ", "ADV"):
            return Ask("number", text, "", lemmas)
        return None  # "how did X change?" asks for a description
    if word in _WH_KIND:
        return Ask(_WH_KIND[word], text, "", lemmas)
    if word == "what" and any(t.lemma_.lower() == "worth" for t in _clause_tokens(clause)):
        return Ask("amount", text, "", lemmas)  # "what were X worth?"
    if word in ("what", "which"):
        noun = wh.head if wh.dep_ == "det" and wh.head.pos_ in ("NOUN", "PROPN") else _copula_noun(wh)
        if noun is None and word == "what" and wh.dep_ in ("nsubj", "nsubjpass", "dobj", "attr"):
            # "What happened to X?", "what did Xi tell scientists?", "what is SMIC?": a bare "what" that
            # is the clause's subject or object names no kind of thing, and any entity of the passage
            # would fit it; the sentences answer. ("An annual output of what" still asks for a value.)
            return None
        if noun is None:
            return Ask("thing", text, "", lemmas)
        words = [t.text for t in noun.lefts if t.dep_ in ("compound", "amod") and t.i > wh.i] + [noun.text]
        return Ask("thing", text, " ".join(words), lemmas - {noun.lemma_.lower()})
    return None


def _label(wh: Token, ask: Ask) -> str:
    """The question word and the noun it asks about, in the question's own spelling: "which start-up",
    "how many harbours", "how much", "when"."""
    doc = wh.doc
    end = wh.i + 1
    if wh.dep_ == "det" and wh.head.i > wh.i:
        end = wh.head.i + 1
    elif ask.noun:
        head = next((t for t in doc[wh.i + 1: wh.i + 6] if t.text == ask.noun.split()[-1]), None)
        end = head.i + 1 if head is not None else end
    elif end < len(doc) and doc[end].lower_ in ("many", "much"):
        end += 1
    return doc[wh.i: end].text


def _lead(wh: Token) -> str:
    """The modifiers just before ``wh`` ("more than", "about"), lower case."""
    words: list[str] = []
    for token in reversed(wh.doc[max(0, wh.i - 3): wh.i]):
        if token.pos_ not in ("ADJ", "ADV", "ADP", "SCONJ") or (token.dep_ == "prep" and token.i == 0):
            break
        words.insert(0, token.lower_)
    return " ".join(words)


def _copula_noun(wh: Token) -> Token | None:
    """What "what is the X (of Y)?" names: X, or Y when X only names a name ("the name of the band")."""
    verb = wh.head
    if wh.dep_ not in ("attr", "nsubj") or verb.lemma_ != "be":
        return None
    # "What is the capital of Y?" names a kind of thing; "what is the Orlen Institute?" names the thing
    # itself and asks what it is, which its sentences tell.
    other = next((t for t in verb.children if t.dep_ in ("nsubj", "attr") and t.i != wh.i
                  and t.pos_ == "NOUN"), None)
    if other is not None and other.lemma_.lower() in _NAMING_NOUNS:
        of = next((p for p in other.children if p.dep_ == "prep" and p.lower_ == "of"), None)
        named = next((t for t in of.children if t.dep_ == "pobj"), None) if of is not None else None
        return named if named is not None and named.pos_ == "NOUN" else other
    return other


def _counted(many: Token) -> str:
    """What "how many" counts ("technologies")."""
    head = many.head
    return head.text if head.pos_ in ("NOUN", "PROPN") else ""


def _clause_tokens(clause: Token) -> list[Token]:
    """The clause's words, without a coordinate clause that follows it ("..., and who translated it")."""
    return [t for t in clause.subtree if not any(a.dep_ == "conj" and a.head == clause for a in [t, *t.ancestors]
                                                 if a.i != clause.i)]


def _clause_text(wh: Token, clause: Token) -> str:
    """The question's words from ``wh`` to the end of its clause, spaced as the question spaces them."""
    text = "".join(t.text_with_ws for t in _clause_tokens(clause) if t.i >= wh.i and t.dep_ != "cc")
    return " ".join(text.split()).strip(" ,?.")


def _options(doc: Doc) -> tuple[str, ...]:
    """The two sides of an "A or B" coordination of nouns."""
    for token in doc:
        if token.dep_ != "conj" or token.pos_ not in ("PROPN", "NOUN", "NUM"):
            continue
        if not any(c.lower_ == "or" for c in token.head.children):
            continue
        head = token.head
        start = head.left_edge.i
        while start < head.i and doc[start].pos_ not in ("PROPN", "NOUN", "NUM", "DET"):
            start += 1  # "first The Exies": the comparison's word is not part of the option
        # The left option is the head's phrase up to the "or": "Made in China 2025", not "Made".
        stop = min((c.i for c in head.children if c.dep_ in ("cc", "punct") and c.i > head.i), default=head.i + 1)
        left = doc[start: max(stop, head.i + 1)]
        right = doc[token.left_edge.i: token.right_edge.i + 1]
        return (_strip(left), _strip(right))
    return ()


def _strip(span: Span) -> str:
    words = [t for t in span if not t.is_punct]
    while words and words[0].pos_ == "CCONJ":
        words = words[1:]
    return " ".join(t.text for t in words).replace(" 's", "'s")


def _order(doc: Doc) -> Order:
    for token in doc:
        word = token.lower_
        if word in _EARLIEST:
            return "earliest"
        if word in _LATEST:
            return "latest"
        if word in _LEAST:
            return "least"
        if token.tag_ in ("JJR", "RBR", "JJS", "RBS"):
            return "most"
    return ""


def _content_lemmas(tokens: Doc | Span | object) -> list[str]:
    return [t.lemma_.lower() for t in tokens  # type: ignore[attr-defined]
            if t.pos_ in ("NOUN", "PROPN", "VERB", "ADJ", "NUM") and not t.is_stop]
