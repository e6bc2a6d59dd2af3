"""Checks on the default corpus in ``sources/``: front matter, length, structure, originality.

Fast and model-free: it only reads the Markdown notes (and, when present, the seed texts the
notes were written from).
"""

from __future__ import annotations

import re
import string
import unicodedata
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ROOT / "sources"
SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seeds"

NOTES = sorted(p for p in SOURCES.glob("*.md") if p.name != "README.md")
MIN_NOTES = 30
MIN_WORDS, MAX_WORDS = 300, 1200
NGRAM = 12

_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)(.*)\Z", re.DOTALL)
_HEADING = re.compile(r"^#{1,6}[ \t]+\S", re.MULTILINE)
_FENCE = re.compile(r"^(```|~~~).*?^\1", re.DOTALL | re.MULTILINE)
_PUNCT = str.maketrans("", "", string.punctuation + "“”‘’‚‛„‟′″«»…")
# A reader sees the same words in "information-technology" and "information technology", and in
# "a/b" and "a b": hyphens, dashes, the minus sign and slashes separate words rather than make new ones.
_JOINERS = re.compile(r"[-‐‑‒–—―−/]")
# "1,334", "1 334" (no-break or thin space) and "1'334" are the same figure as "1334".
_DIGIT_GROUP = re.compile(r"(?<=\d)[,'’\u00a0\u2009\u202f](?=\d{3}(?!\d))")
_PERCENT = re.compile(r"(?<=\d)\s*%|\bper\s+cent\b")
_CITATION = re.compile(r"\s?\[@[\w-]+(?:\s*;\s*@[\w-]+)*\]")
_TABLE_RULE = re.compile(r"^\|[\s:|-]+\|$")
_ITEM_OR_ROW = re.compile(r"^([-*+]|\d+[.)])\s|^\|")


def _split(path: Path) -> tuple[str, str]:
    """(front matter text, body without its [@id] citations, which a reader does not count as words);
    fails the test when the note has no front matter block."""
    front, body = _split_cited(path)
    return front, _CITATION.sub("", body)


def _split_cited(path: Path) -> tuple[str, str]:
    text = path.read_text(encoding="utf-8")
    match = _FRONT_MATTER.match(text)
    if not match:
        pytest.fail(f"{path.name}: no YAML front matter block (--- ... ---) at the top of the file")
    return match.group(1), match.group(2)


def _meta(path: Path) -> dict:
    raw, _ = _split(path)
    try:
        meta = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        pytest.fail(f"{path.name}: front matter is not valid YAML: {exc}")
    if not isinstance(meta, dict):
        pytest.fail(f"{path.name}: front matter is not a mapping (got {type(meta).__name__})")
    return meta


def _words(text: str) -> list[str]:
    """Lower-cased words as a reader counts them: punctuation and quotes stripped, hyphenated words
    split, thousands separators dropped, "%" and "per cent" read as "percent"; empty tokens dropped."""
    text = _DIGIT_GROUP.sub("", text)  # before NFKC, which turns the thin and no-break spaces into spaces
    text = unicodedata.normalize("NFKC", text).replace("\u00ad", "").lower()  # a soft hyphen is invisible
    text = _JOINERS.sub(" ", _PERCENT.sub(" percent", text))
    out = []
    for token in text.split():
        word = token.translate(_PUNCT)
        if word:
            out.append(word)
    return out


def _ngrams(words: list[str], n: int = NGRAM) -> set[tuple[str, ...]]:
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def _shared_runs(note_words: list[str], seed_grams: set[tuple[str, ...]], n: int = NGRAM) -> list[str]:
    """Maximal runs of >= n consecutive note words whose every n-gram also occurs in the seed."""
    hits = [i for i in range(len(note_words) - n + 1) if tuple(note_words[i : i + n]) in seed_grams]
    runs: list[str] = []
    start = end = None
    for i in hits:
        if start is not None and i <= end:  # overlaps or touches the current run
            end = i + n
        else:
            if start is not None:
                runs.append(" ".join(note_words[start:end]))
            start, end = i, i + n
    if start is not None:
        runs.append(" ".join(note_words[start:end]))
    return runs


def _id(path: Path) -> str:
    return path.name


def test_corpus_has_enough_notes():
    assert len(NOTES) >= MIN_NOTES, f"sources/: only {len(NOTES)} notes, expected at least {MIN_NOTES}"


@pytest.mark.parametrize("note", NOTES, ids=_id)
def test_front_matter_fields(note: Path):
    meta = _meta(note)
    name = note.name

    title = meta.get("title")
    assert isinstance(title, str) and title.strip(), f"{name}: front matter 'title' is missing or empty"

    summary = meta.get("summary")
    assert isinstance(summary, str) and summary.strip(), f"{name}: front matter 'summary' is missing or empty"
    sentences = [s for s in re.split(r"(?<=[.!?])\s+(?=[A-Z])", summary.strip()) if s]
    assert len(sentences) == 1, f"{name}: 'summary' should be one sentence, found {len(sentences)}: {summary!r}"

    topics = meta.get("topics")
    assert isinstance(topics, list) and topics, f"{name}: 'topics' must be a non-empty list, got {topics!r}"
    bad = [t for t in topics if not isinstance(t, str) or not t.strip()]
    assert not bad, f"{name}: 'topics' entries must be non-empty strings, bad entries: {bad!r}"

    date = meta.get("date")
    assert date not in (None, ""), f"{name}: front matter 'date' is missing or empty"


@pytest.mark.parametrize("note", NOTES, ids=_id)
def test_front_matter_sources(note: Path):
    meta = _meta(note)
    name = note.name
    sources = meta.get("sources")
    assert isinstance(sources, list) and sources, f"{name}: 'sources' must be a non-empty list, got {sources!r}"
    for i, src in enumerate(sources):
        assert isinstance(src, dict), f"{name}: sources[{i}] must be a mapping, got {src!r}"
        missing = [k for k in ("publisher", "title", "date", "url") if k not in src]
        assert not missing, f"{name}: sources[{i}] lacks key(s) {missing} ({src!r})"
    urls = [str(s.get("url") or "") for s in sources]
    assert any(u.startswith("http") for u in urls), f"{name}: no source has an http(s) url (urls: {urls!r})"


@pytest.mark.parametrize("note", NOTES, ids=_id)
def test_every_block_cites_the_sources_it_draws_on(note: Path):
    """A card shows the report the quoted block cites, so every paragraph, list item and table row
    names its sources by id, every id is a listed source, and every listed source is cited."""
    name = note.name
    sources = _meta(note).get("sources") or []
    ids = [s.get("id") for s in sources if isinstance(s, dict)]
    assert all(isinstance(i, str) and re.fullmatch(r"[a-z0-9-]+", i) for i in ids), (
        f"{name}: every source needs an id of lower-case letters, digits and hyphens, got {ids!r}")
    assert len(set(ids)) == len(ids), f"{name}: source ids repeat: {ids!r}"
    _, body = _split_cited(note)
    cited: set[str] = set()
    for block in _blocks(_FENCE.sub("", body)):
        keys = re.findall(r"@([\w-]+)", " ".join(_CITATION.findall(block)))
        assert keys, f"{name}: this block cites no source; end it with [@id] naming what it draws on: {block[:90]!r}"
        unknown = sorted(set(keys) - set(ids))
        assert not unknown, f"{name}: {unknown} cited but no source has that id (ids: {ids}): {block[:90]!r}"
        cited.update(keys)
    assert set(ids) <= cited, f"{name}: sources {sorted(set(ids) - cited)} are listed but no block cites them"


def _blocks(body: str) -> list[str]:
    """Paragraphs, list items (with the lines they wrap onto) and table data rows; a table's header row
    is the row above its rule and names columns, not sources."""
    lines = body.splitlines()
    blocks: list[list[str]] = []
    current: list[str] = []
    for i, line in enumerate(lines):
        stripped = line.strip()
        header = stripped.startswith("|") and i + 1 < len(lines) and _TABLE_RULE.match(lines[i + 1].strip())
        if not stripped or stripped.startswith("#") or _TABLE_RULE.match(stripped) or header:
            if current:
                blocks.append(current)
            current = []
            continue
        if _ITEM_OR_ROW.match(stripped) and current:
            blocks.append(current)
            current = []
        current.append(line)
    if current:
        blocks.append(current)
    return ["\n".join(b) for b in blocks]


@pytest.mark.parametrize("note", NOTES, ids=_id)
def test_body_length_and_headings(note: Path):
    _, body = _split(note)
    name = note.name
    count = len(_words(body))
    assert MIN_WORDS <= count <= MAX_WORDS, f"{name}: body has {count} words, expected {MIN_WORDS}-{MAX_WORDS}"
    assert _HEADING.search(_FENCE.sub("", body)), f"{name}: body has no Markdown heading (# ...)"


def _seed_grams() -> dict[str, set[tuple[str, ...]]]:
    if not SEEDS.is_dir():
        pytest.skip(f"seed texts not found at {SEEDS}; originality check needs them")
    seeds = sorted(p for p in SEEDS.rglob("*") if p.is_file())
    if not seeds:
        pytest.skip(f"no seed files in {SEEDS}")
    return {p.name: _ngrams(_words(p.read_text(encoding="utf-8", errors="replace"))) for p in seeds}


@pytest.fixture(scope="module")
def seed_grams() -> dict[str, set[tuple[str, ...]]]:
    return _seed_grams()


@pytest.mark.parametrize("note", NOTES, ids=_id)
def test_no_long_runs_copied_from_seeds(note: Path, seed_grams):
    # The note's own prose: title, summary and body. The ``sources`` list is left out, since a
    # citation has to reproduce the cited article's title word for word.
    meta = _meta(note)
    _, body = _split(note)
    words = _words(" ".join([str(meta.get("title") or ""), str(meta.get("summary") or ""), body]))
    problems = []
    for seed_name, grams in seed_grams.items():
        for run in _shared_runs(words, grams):
            problems.append(f"  with {seed_name} ({len(run.split())} words): {run!r}")
    assert not problems, f"{note.name}: shares runs of {NGRAM}+ consecutive words with seed texts:\n" + "\n".join(
        problems
    )


def test_shared_runs_helper():
    seed = _ngrams(_words("one two three four five six seven eight nine ten eleven twelve thirteen"))
    note = _words("Zero one, two three four five six seven eight nine ten eleven twelve thirteen! end")
    assert _shared_runs(note, seed) == ["one two three four five six seven eight nine ten eleven twelve thirteen"]
    assert _shared_runs(_words("one two three four five six seven eight nine ten eleven zzz"), seed) == []


def test_words_read_as_a_reader_does():
    plain = _words("The information technology projects numbered 1334 and covered 15.9 percent of Chinas demand")
    variants = [
        "The information-technology projects numbered 1,334 and covered 15.9% of China's demand",
        "The “information‑technology” projects numbered 1\u2009334 and covered 15.9 per cent of China’s demand",
        "The ‘information–technology’ projects numbered 1\u202f334 and covered 15.9 % of China‘s demand",
        'The "infor\u00admation-tech\u00adnology" projects numbered 1,334 and covered 15.9 Per Cent of '
        '"China\'s" demand',
    ]
    for text in variants:
        assert _words(text) == plain, text
    # A hyphen or slash between words makes two words, so a copied run cannot hide behind one.
    assert _words("state-owned/private") == ["state", "owned", "private"]
    # Digits that are not a thousands group stay apart: a year range, a decimal, a list.
    assert _words("2014-2020, 15.90 and 1,33") == ["2014", "2020", "1590", "and", "133"]
    seed = _ngrams(_words("alpha beta gamma delta-epsilon zeta eta theta iota kappa lambda mu 1,334"))
    note = _words("Alpha “beta” gamma delta epsilon zeta eta theta iota kappa lambda mu 1334.")
    assert _shared_runs(note, seed) == ["alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu 1334"]
