"""Each loader on a real file of its format."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import write_note

from index.chunking import ChunkerConfig, chunk_document
from index.loaders import LoadError, load


def test_markdown_front_matter_becomes_metadata_and_offsets_stay_true(tmp_path: Path):
    path = write_note(
        tmp_path, "note.md", "Big Fund phases", "## Phase III\n\nRegistered capital was large.",
        date="2024-05-24", topics=["finance", "semiconductors"], summary="One line.",
        sources=[{"publisher": "Caixin", "title": "t", "date": "2024", "url": ""},
                 {"publisher": "Bits&Chips", "title": "u", "date": "2022", "url": "https://example.org/a"}],
    )
    doc = load(path, display_path="note.md")
    assert (doc.title, doc.date, doc.topics) == ("Big Fund phases", "2024-05-24", ("finance", "semiconductors"))
    assert doc.publisher == "Bits&Chips" and doc.url == "https://example.org/a", "first source with a URL"
    raw = path.read_text()
    assert "topics:" not in doc.text.strip().splitlines()[0]
    start = doc.text.index("Registered capital")
    assert raw[start:start + 18] == "Registered capital", "offsets point into the file on disk"


def test_markdown_citations_tie_each_block_to_its_report_and_are_never_indexed(tmp_path: Path):
    body = ("## Figures\n\nThe 2020 share was 15.9%, DigiTimes reported. [@digitimes]\n\n"
            "The 2021 share was 16.7%, according to\nBits&Chips. [@bits-chips]\n\n"
            "- Both outlets cite the same firm. [@digitimes; @bits-chips]\n")
    path = write_note(tmp_path, "note.md", "Shares", body, sources=[
        {"publisher": "DigiTimes", "title": "t", "date": "2021-01-07", "url": "https://example.org/d",
         "id": "digitimes"},
        {"publisher": "Bits&Chips", "title": "u", "date": "2022-05-24", "url": "https://example.org/b",
         "id": "bits-chips"}])
    doc = load(path, display_path="note.md")
    assert "[@" not in doc.text and len(doc.text) == len(path.read_text()), "citations blanked in place"
    chunk = chunk_document(doc, ChunkerConfig(max_tokens=400, overlap_tokens=0))[0]
    assert "@" not in chunk.text
    second = doc.text.index("The 2021 share")
    assert [r.publisher for r in chunk.reports_at(second, second + 20)] == ["Bits&Chips"]
    assert chunk.reports_at(second, second + 20)[0].url == "https://example.org/b"
    first = doc.text.index("The 2020 share")
    assert [r.publisher for r in chunk.reports_at(first, first + 10)] == ["DigiTimes"]
    item = doc.text.index("Both outlets")
    assert [r.publisher for r in chunk.reports_at(item, item + 5)] == ["DigiTimes", "Bits&Chips"]
    assert chunk.reports_at(doc.text.index("## Figures"), doc.text.index("## Figures") + 5) == ()


def test_markdown_citation_of_an_unlisted_source_names_the_file_and_the_id(tmp_path: Path):
    path = write_note(tmp_path, "note.md", "Shares", "## A\n\nA claim. [@reuters]\n", sources=[
        {"publisher": "DigiTimes", "title": "t", "date": "2021", "url": "https://example.org/d", "id": "digitimes"}])
    with pytest.raises(LoadError, match=r"note\.md: .*@reuters.*ids: digitimes"):
        load(path, display_path="note.md")


def test_html_keeps_main_text_and_drops_scripts_and_navigation(tmp_path: Path):
    path = tmp_path / "page.html"
    path.write_text(
        "<html><head><title>Chip report</title><script>var tracking = 1;</script>"
        "<style>p{color:red}</style></head><body><nav><a href='/'>Home</a> Menu items</nav>"
        "<header>Site header</header><main><h1>Lithography</h1><p>China's best scanner worked at 90 nm.</p>"
        "<ul><li>First point</li></ul></main><footer>Copyright footer</footer></body></html>"
    )
    doc = load(path)
    assert doc.title == "Chip report"
    assert "90 nm" in doc.text and "First point" in doc.text and "# Lithography" in doc.text
    for junk in ("tracking", "color:red", "Menu items", "Site header", "Copyright footer"):
        assert junk not in doc.text


def test_pdf_chunks_know_their_page(tmp_path: Path):
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    path = tmp_path / "report.pdf"
    pdf = canvas.Canvas(str(path), pagesize=A4)
    pdf.setTitle("Chokepoint report")
    for page, topic in enumerate(["lithography machines", "aviation steel", "industrial software"], start=1):
        for line in range(30):
            pdf.drawString(50, 800 - line * 20, f"Page {page} discusses {topic} in line {line}.")
        pdf.showPage()
    pdf.save()
    doc = load(path)
    assert doc.title == "Chokepoint report" and [n for _, n in doc.pages] == [1, 2, 3]
    chunks = chunk_document(doc, ChunkerConfig(max_tokens=60, overlap_tokens=0))
    for chunk in chunks:
        expected = int(chunk.text.split("Page ")[1].split()[0])
        assert chunk.page == expected, chunk.text[:80]
    assert {c.page for c in chunks} == {1, 2, 3}


def test_docx_headings_become_sections(tmp_path: Path):
    import docx

    document = docx.Document()
    document.core_properties.title = "CETC profile"
    document.add_heading("Business lines", level=2)
    document.add_paragraph("CETC supplies the BeiDou satellite system and makes 5G antennas.")
    document.add_heading("Ownership", level=2)
    document.add_paragraph("It is state-owned, under SASAC.")
    path = tmp_path / "cetc.docx"
    document.save(path)
    doc = load(path)
    assert doc.title == "CETC profile"
    chunks = chunk_document(doc, ChunkerConfig(max_tokens=40, overlap_tokens=0))
    by_heading = {c.heading: c.text for c in chunks}
    assert "BeiDou" in by_heading["Business lines"] and "SASAC" in by_heading["Ownership"]


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.md", b"", "empty"),
        ("nul.txt", b"abc\x00def" * 100, "binary"),
        ("bad.pdf", b"%PDF-1.7 garbage", "PDF"),
        ("front.md", b"---\ntitle: [unclosed\n---\nbody", "front matter"),
        ("only-space.txt", b"   \n\n  ", "no text"),
    ],
)
def test_bad_files_raise_an_error_naming_the_file(tmp_path: Path, name: str, content: bytes, reason: str):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(LoadError) as caught:
        load(path, display_path=name)
    assert str(caught.value).startswith(name) and reason in str(caught.value)


def test_oversized_file_is_refused_before_reading(tmp_path: Path):
    path = tmp_path / "big.txt"
    path.write_text("word " * 1000)
    with pytest.raises(LoadError, match=r"big.txt: file is .* MB, over the"):
        load(path, display_path="big.txt", max_bytes=100)
