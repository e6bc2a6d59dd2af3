"""Generated, varied text on the project's subject, for benchmarks that need many chunks.

Sentences come from templates filled with companies, technologies, policies, years and
figures drawn from a seeded ``random.Random``, so a corpus is the same on every run and on
every machine, yet no two documents are copies: BM25 sees a realistic vocabulary spread and the
dense index sees vectors spread over the topic rather than one point repeated.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

COMPANIES = [
    "SMIC", "Huawei", "HiSilicon", "YMTC", "CXMT", "Naura", "AMEC", "SMEE", "Hua Hong", "COMAC", "AECC",
    "BOE", "Cambricon", "Hygon", "Loongson", "Zhaoxin", "Sugon", "Inspur", "CATL", "BYD", "CETC", "Empyrean",
    "Primarius", "Piotech", "ACM Research", "Kingsemi", "Jiangsu Nata", "Tongcheng New Materials", "Sinopec",
    "China Baowu", "Zhongke Shuguang", "Unisoc", "GigaDevice", "Will Semiconductor", "JCET", "Tongfu",
    "Sanan Optoelectronics", "Wingtech", "Hikvision", "iFlytek", "Baidu", "Alibaba T-Head", "Biren", "Moore Threads",
]
FOREIGN = [
    "ASML", "Applied Materials", "Lam Research", "Tokyo Electron", "KLA", "Nikon", "Canon", "JSR", "Shin-Etsu",
    "Synopsys", "Cadence", "Siemens EDA", "TSMC", "Samsung", "Intel", "Nvidia", "Rolls-Royce", "GE Aerospace",
    "SKF", "Schaeffler", "Zeiss", "Sumitomo", "Tokyo Ohka Kogyo", "Entegris",
]
TECHNOLOGIES = [
    "lithography machines", "EUV lithography", "ArF immersion scanners", "photoresist", "EDA software",
    "high-end bearing steel", "aero-engine blades", "heavy-duty gas turbines", "high-purity quartz",
    "silicon carbide wafers", "gallium nitride power devices", "DRAM", "3D NAND flash", "advanced packaging",
    "etching equipment", "thin-film deposition tools", "ion implanters", "wafer inspection systems",
    "industrial robots' precision reducers", "high-pressure piston pumps", "diesel fuel injection systems",
    "medical imaging detectors", "ultra-precision machine tools", "scanning electron microscopes",
    "epoxy resins for aircraft", "lithium battery separators", "high-strength stainless steel",
    "operating systems", "industrial software", "database software", "core algorithms",
    "touch sensors", "laser radar", "tunnel boring machine bearings", "fuel cell key materials",
    "AI training chips", "GPU clusters", "high-bandwidth memory", "FPGA devices", "analog chips",
]
POLICIES = [
    "Made in China 2025", "the Big Fund phase II", "the Big Fund phase III", "the 14th Five-Year Plan",
    "the 13th Five-Year Plan", "the National Medium- and Long-Term Plan for Science and Technology",
    "the October 2022 US export controls", "the US Entity List", "the Dutch export licence rules",
    "Japan's 2023 equipment restrictions", "the 35 chokepoint technologies list", "the new whole-nation system",
    "the dual circulation strategy", "the Science and Technology Innovation Board", "the CHIPS and Science Act",
    "the December 2024 high-bandwidth memory controls", "the Strategic Emerging Industries plan",
]
PUBLISHERS = [
    "CSET", "Chatham House", "MERICS", "CSIS", "Rhodium Group", "Science and Technology Daily", "Caixin",
    "Nikkei Asia", "Reuters", "SemiAnalysis", "The Register", "Jamestown Foundation", "RAND", "Bruegel",
    "People's Daily Online", "Xinhua", "South China Morning Post", "TechInsights", "Gavekal", "OECD",
]
TOPICS = ["semiconductors", "chokepoints", "policy", "export-controls", "equipment", "materials", "software",
          "aerospace", "industrial-parts", "funding", "ai", "energy"]
PROVINCES = ["Shanghai", "Beijing", "Shenzhen", "Wuhan", "Hefei", "Xi'an", "Chengdu", "Nanjing", "Wuxi", "Hangzhou",
             "Suzhou", "Tianjin", "Dalian", "Xiamen", "Changsha"]
NODES = ["28nm", "14nm", "7nm", "5nm", "90nm", "65nm", "40nm", "22nm", "3nm"]
VERBS = ["expanded", "cut", "doubled", "announced", "delayed", "accelerated", "restructured", "began"]
MEASURES = ["market share", "self-sufficiency rate", "import dependence", "capital spending",
            "research budget", "output", "revenue", "localisation rate", "yield", "patent filings"]

TEMPLATES = [
    "In {year}, {company} {verb} its work on {tech}, according to {publisher}.",
    "{publisher} estimated that China's {measure} in {tech} stood at {pct}% in {year}.",
    "Domestic suppliers met about {pct}% of demand for {tech} by {year}, up from {pct2}% in {year0}.",
    "{company} received roughly {money} billion yuan from {policy} to develop {tech}.",
    "Under {policy}, {tech} was named a priority, with a target of {pct}% local supply by {year}.",
    "{foreign} remained the main source of {tech} for Chinese fabs in {year}.",
    "Analysts at {publisher} said {company} was still two to three generations behind {foreign} in {tech}.",
    "{company} opened a {tech} plant in {province} in {year}, with capacity of {wafers} thousand units a month.",
    "{policy} restricted sales of {tech} to {company}, which then turned to domestic suppliers.",
    "By {year}, {company} claimed a {node} process using only Chinese {tech}.",
    "The {measure} of {company} rose {pct}% in {year} as customers replaced {foreign} products.",
    "Science and Technology Daily listed {tech} among the chokepoints in its {year0} series.",
    "Engineers in {province} reported that {tech} from {company} failed {pct}% of reliability tests in {year}.",
    "{foreign} said its China revenue fell {pct}% in {year} after {policy} took effect.",
    "A {publisher} report from {year} counted {count} Chinese firms working on {tech}.",
    "Local governments in {province} pledged {money} billion yuan for {tech} between {year0} and {year}.",
    "{company}'s {node} chips relied on {foreign} tools for {pct}% of process steps, {publisher} found.",
    "The gap in {tech} was described as the hardest to close, since it depends on decades of process know-how.",
    "{company} hired about {count} engineers from {foreign} and TSMC in {year} to speed up work on {tech}.",
    "Imports of {tech} reached {money} billion dollars in {year}, {publisher} reported.",
    "{policy} set aside funds for {tech}, but {publisher} judged the results uneven by {year}.",
    "Stockpiling ahead of {policy} pushed China's purchases of {tech} up {pct}% in {year}.",
    "{company} and {company2} formed a joint venture in {province} in {year} to make {tech}.",
    "Yields on {company}'s {node} line were estimated at {pct}% in {year}, well below {foreign}'s.",
]
HEADINGS = ["Background", "Funding", "Progress", "Bottlenecks", "Foreign suppliers", "Outlook", "Figures",
            "Policy response", "Industry view", "Timeline"]


def _sentence(rng: random.Random, template: str | None = None) -> str:
    year = rng.randint(2012, 2025)
    return (template or rng.choice(TEMPLATES)).format(
        year=year, year0=year - rng.randint(2, 8), company=rng.choice(COMPANIES), company2=rng.choice(COMPANIES),
        foreign=rng.choice(FOREIGN), tech=rng.choice(TECHNOLOGIES), policy=rng.choice(POLICIES),
        publisher=rng.choice(PUBLISHERS), province=rng.choice(PROVINCES), node=rng.choice(NODES),
        verb=rng.choice(VERBS), measure=rng.choice(MEASURES), pct=rng.randint(3, 95), pct2=rng.randint(1, 40),
        money=round(rng.uniform(0.5, 340), 1), wafers=rng.randint(5, 120), count=rng.randint(12, 900),
    )


def paragraph(rng: random.Random, sentences: int) -> str:
    return " ".join(_sentence(rng) for _ in range(sentences))


@dataclass(frozen=True)
class GeneratedDoc:
    """One generated source: its file name, front matter fields and markdown body."""

    name: str
    title: str
    publisher: str
    date: str
    topics: tuple[str, ...]
    body: str

    def markdown(self) -> str:
        topics = ", ".join(self.topics)
        return (f'---\ntitle: "{self.title}"\npublisher: "{self.publisher}"\ndate: "{self.date}"\n'
                f"topics: [{topics}]\n---\n\n{self.body}\n")


def documents(seed: int, *, sections: tuple[int, int] = (2, 5), paragraph_sentences: tuple[int, int] = (4, 8),
              paragraphs: tuple[int, int] = (1, 3)) -> Iterator[GeneratedDoc]:
    """An endless, deterministic stream of varied markdown documents."""
    rng = random.Random(seed)
    n = 0
    while True:
        tech = rng.choice(TECHNOLOGIES)
        title = f"{rng.choice(COMPANIES)} and {tech}: {rng.choice(HEADINGS).lower()} ({rng.randint(2014, 2025)})"
        parts = []
        for heading in rng.sample(HEADINGS, rng.randint(*sections)):
            parts.append(f"## {heading}\n")
            for _ in range(rng.randint(*paragraphs)):
                parts.append(paragraph(rng, rng.randint(*paragraph_sentences)) + "\n")
        yield GeneratedDoc(
            name=f"doc{n:06d}.md", title=title, publisher=rng.choice(PUBLISHERS),
            date=f"{rng.randint(2014, 2025)}-{rng.randint(1, 12):02d}",
            topics=tuple(sorted(rng.sample(TOPICS, rng.randint(1, 3)))), body="\n".join(parts),
        )
        n += 1


def write_documents(folder: Path, count: int, seed: int, **shape: tuple[int, int]) -> list[Path]:
    """Write ``count`` generated documents as markdown files under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for doc, _ in zip(documents(seed, **shape), range(count), strict=False):
        path = folder / doc.name
        path.write_text(doc.markdown())
        paths.append(path)
    return paths


def queries(seed: int, count: int) -> list[str]:
    """Varied questions in the shapes users ask: short keyword queries, questions, long questions."""
    rng = random.Random(seed)
    shapes = [
        "What share of {tech} did Chinese suppliers provide in {year}?",
        "How much money did {policy} give to {company}?",
        "{company} {tech}",
        "Which foreign firms supply {tech} to China?",
        "Did {policy} slow {company}'s progress on {node} chips?",
        "Why is {tech} a chokepoint for China, and how far behind {foreign} are domestic makers?",
        "{tech} self-sufficiency {year}",
        "What did {publisher} report about {tech} in {province}?",
        "When did {company} start producing {tech}?",
        "How did {foreign}'s China revenue change after {policy}?",
    ]
    return [_sentence(rng, shapes[i % len(shapes)]) for i in range(count)]
