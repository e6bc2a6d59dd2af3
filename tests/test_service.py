"""`chokepoint serve` driven by clients nobody here wrote: the official openai SDK, LangChain's ChatOpenAI,
plain HTTP for hostile input; and the LangChain retriever inside an LCEL chain.

The server is a real subprocess over a small temporary corpus that it indexes itself through
POST /v1/index. Its LLM endpoint points at a closed port, so `chokepoint-llm` fails as a dead LLM does.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest
from conftest import SOURCES, _free_port, chokepoint_serve, copy_notes, indexed_engine, write_note

from assistant.llm.prompts import REFUSAL_TEXT

TOKEN = "test-token-5f3c"
FILES = ["chip-self-sufficiency-figures.md", "cetc-potevio-merger.md", "digital-silk-road.md",
         "dram-memory-push.md", "big-fund-and-state-bank-lending.md"]
MERGER_Q = "When did SASAC approve the CETC Potevio merger?"
CHIP_Q = "How much of its chip demand did China produce in 2020?"
OFF_TOPIC_Q = "What is the recipe for a Neapolitan margherita pizza?"


@dataclass(frozen=True)
class Server:
    url: str
    sources: Path
    log: Path

    @property
    def v1(self) -> str:
        return f"{self.url}/v1"

    def client(self, token: str | None = TOKEN) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.v1, api_key=token or "none", max_retries=0, timeout=120)

    def post(self, path: str, token: str | None = TOKEN, headers: dict[str, str] | None = None,
             **kwargs: object) -> httpx.Response:
        auth = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.post(f"{self.v1}{path}", headers={**auth, **(headers or {})}, timeout=300, **kwargs)


def _dead_port() -> int:
    return _free_port()  # nothing listens there once the probe socket is closed


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Server:
    root = tmp_path_factory.mktemp("service")
    sources = copy_notes(root / "sources", FILES)
    env = {**os.environ, "CHOKEPOINT_DATA_DIR": str(root / "data"), "CHOKEPOINT_SOURCES_DIR": str(sources),
           "CHOKEPOINT_API_TOKEN": TOKEN, "CHOKEPOINT_ANSWERER": "extractive",
           "CHOKEPOINT_LLM_URL": f"http://127.0.0.1:{_dead_port()}/v1", "CHOKEPOINT_LLM_TIMEOUT_S": "5",
           "CHOKEPOINT_CONFIG": str(root / "none.toml"), "HF_HUB_OFFLINE": "1"}
    with chokepoint_serve(root, env, TOKEN) as url:
        service = Server(url, sources, root / "serve.log")
        report = service.post("/index").json()
        assert sorted(report["added"]) == sorted(FILES), report
        yield service


def _raw_citations(server: Server, question: str, **body: object) -> dict:
    raw = server.client().chat.completions.with_raw_response.create(
        model="chokepoint-extractive", messages=[{"role": "user", "content": question}], extra_body=body or None)
    return json.loads(raw.http_response.text)


# --- the openai SDK ---------------------------------------------------------------------------------

def test_models_are_listed(server):
    assert {m.id for m in server.client().models.list()} == {"chokepoint", "chokepoint-extractive", "chokepoint-llm"}


def test_a_completion_carries_markers_sources_and_citations(server):
    completion = server.client().chat.completions.create(
        model="chokepoint-extractive", messages=[{"role": "user", "content": MERGER_Q}])
    content = completion.choices[0].message.content
    assert completion.choices[0].finish_reason == "stop"
    assert "[1]" in content and "**Sources**" in content and "cetc-potevio-merger.md" in content

    body = _raw_citations(server, MERGER_Q)
    citations = body["citations"]
    assert citations["refused"] is False and citations["refusal_reason"] == ""
    item = citations["items"][0]
    assert item["n"] == 1 and item["source"] == "cetc-potevio-merger.md" and item["title"]
    assert {"url", "page", "quote", "start", "end"} <= item.keys()
    # The offsets point at the quoted span inside the chunk, and the chunk's text is in the file.
    assert item["chunk_start"] <= item["start"] < item["end"] <= item["chunk_end"]
    assert " ".join(item["quote"].split()) in " ".join((server.sources / item["source"]).read_text().split())
    assert body["choices"][0]["message"]["content"].startswith(citations["sentences"][0]["text"][:20])


def test_streaming_sends_verified_sentences_then_done(server):
    stream = server.client().chat.completions.create(
        model="chokepoint-extractive", messages=[{"role": "user", "content": CHIP_Q}], stream=True)
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    citations = chunks[-1].model_extra["citations"]
    assert not citations["refused"] and citations["items"]
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    whole = server.client().chat.completions.create(
        model="chokepoint-extractive", messages=[{"role": "user", "content": CHIP_Q}]).choices[0].message.content
    assert text == whole
    assert "15.9%" in text and "[1]" in text
    # Every content chunk before the Sources list is one verified sentence, never draft tokens.
    sentences = [c.choices[0].delta.content for c in chunks[1:-1]][:-1]
    assert [s.strip() for s in sentences] and len(sentences) == len(citations["sentences"])
    for sent, verified in zip(sentences, citations["sentences"], strict=True):
        assert sent.strip().startswith(verified["text"][:-1])

    # On the wire: "data: {json}" events and a final "data: [DONE]", as OpenAI sends them.
    with httpx.stream("POST", f"{server.v1}/chat/completions", headers={"Authorization": f"Bearer {TOKEN}"},
                      json={"model": "chokepoint", "stream": True, "messages": [{"role": "user", "content": CHIP_Q}]},
                      timeout=120) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in events)
    assert events[-1] == "data: [DONE]"
    assert json.loads(events[-2][6:])["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize("question", [MERGER_Q, CHIP_Q, OFF_TOPIC_Q, "How many African countries take part in "
                                      "Smart Africa?", "How much of its chip demand did China produce in 1995?"])
def test_streamed_content_adds_up_to_the_completion_content(server, question):
    # Sentences go out as they settle, the rest once the answer is complete: the same message either way.
    messages = [{"role": "user", "content": question}]
    chunks = list(server.client().chat.completions.create(model="chokepoint-extractive", messages=messages,
                                                          stream=True))
    whole = server.client().chat.completions.create(model="chokepoint-extractive", messages=messages)
    parts = [c.choices[0].delta.content for c in chunks[1:-1]]
    assert "".join(parts) == whole.choices[0].message.content
    citations = chunks[-1].model_extra["citations"]
    if citations["refused"]:
        assert parts == [whole.choices[0].message.content]  # the refusal, whole: nothing went out before it
    else:
        assert len(parts) == len(citations["sentences"]) + 1 and parts[-1].startswith("\n\n**Sources**")


def test_a_follow_up_uses_the_history(server):
    client = server.client()
    first = client.chat.completions.create(model="chokepoint-extractive",
                                           messages=[{"role": "user", "content": CHIP_Q}])
    history = [{"role": "user", "content": CHIP_Q},
               {"role": "assistant", "content": first.choices[0].message.content},
               {"role": "user", "content": "And in 2014?"}]
    raw = client.chat.completions.with_raw_response.create(model="chokepoint-extractive", messages=history)
    body = json.loads(raw.http_response.text)
    assert "chip demand" in body["citations"]["query"]
    assert not body["citations"]["refused"]
    assert "15.1%" in body["choices"][0]["message"]["content"]


def test_a_question_the_sources_do_not_cover_is_refused(server):
    body = _raw_citations(server, OFF_TOPIC_Q)
    assert body["citations"]["refused"] is True and body["citations"]["refusal_reason"]
    assert body["citations"]["items"] == []
    assert body["choices"][0]["message"]["content"].startswith(REFUSAL_TEXT)


def test_filters_and_k_are_body_fields(server):
    body = _raw_citations(server, CHIP_Q, source="digital-silk-road.md", k=2)
    assert all(item["source"] == "digital-silk-road.md" for item in body["citations"]["items"])
    found = server.post("/search", json={"query": CHIP_Q, "k": 3, "source": ["chip-self-sufficiency-figures.md"]})
    assert found.status_code == 200
    passages = found.json()["data"]
    assert 0 < len(passages) <= 3 and {p["source"] for p in passages} == {"chip-self-sufficiency-figures.md"}
    assert all(p["end"] > p["start"] for p in passages)


def test_status_reports_the_index(server):
    status = httpx.get(f"{server.v1}/status", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30).json()
    assert status["sources"] >= len(FILES) and status["chunks"] > 0


def test_chat_openai_from_langchain_answers_with_markers(server):
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(base_url=server.v1, api_key=TOKEN, model="chokepoint-extractive", max_retries=0, timeout=120)
    reply = llm.invoke(MERGER_Q)
    assert "[1]" in reply.content and "**Sources**" in reply.content
    streamed = "".join(str(part.content) for part in llm.stream(MERGER_Q))
    assert streamed == reply.content


# --- the LLM failing --------------------------------------------------------------------------------

def test_a_dead_llm_is_a_502_with_the_reason(server):
    with pytest.raises(openai.APIStatusError) as caught:
        server.client().chat.completions.create(model="chokepoint-llm",
                                                messages=[{"role": "user", "content": MERGER_Q}])
    assert caught.value.status_code == 502
    assert "LLM" in caught.value.body["message"] and "fallback" in caught.value.body["message"]
    with pytest.raises(openai.APIStatusError) as caught:
        list(server.client().chat.completions.create(model="chokepoint-llm", stream=True,
                                                     messages=[{"role": "user", "content": MERGER_Q}]))
    assert caught.value.status_code == 502


def test_a_dead_llm_falls_back_to_the_extractive_answer_when_asked(server):
    raw = server.client().chat.completions.with_raw_response.create(
        model="chokepoint-llm", messages=[{"role": "user", "content": MERGER_Q}],
        extra_body={"fallback": "extractive"})
    body = json.loads(raw.http_response.text)
    assert body["model"] == "chokepoint-extractive"
    assert body["citations"]["fallback_reason"] and not body["citations"]["refused"]
    assert "[1]" in body["choices"][0]["message"]["content"]


# --- hostile input ----------------------------------------------------------------------------------

def test_an_oversized_body_is_refused(server):
    huge = {"model": "chokepoint", "messages": [{"role": "user", "content": "x" * 2_000_000}]}
    response = server.post("/chat/completions", json=huge)
    assert response.status_code == 413
    assert "CHOKEPOINT_API_MAX_BODY_BYTES" in response.json()["error"]["message"]
    long_question = {"model": "chokepoint", "messages": [{"role": "user", "content": "chip " * 1000}]}
    response = server.post("/chat/completions", json=long_question)
    assert response.status_code == 400 and response.json()["error"]["param"] == "messages[0].content"


@pytest.mark.parametrize(("extra", "param"), [
    ({"k": "five"}, "k"),
    ({"k": 500}, "k"),
    ({"stream": "yes"}, "stream"),
    ({"source": 7}, "source"),
    ({"date_from": "last year"}, "date_from"),
    ({"messages": "hello"}, "messages"),
    ({"messages": [{"role": "user", "content": 42}]}, "messages[0].content"),
    ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
    ({"messages": [{"role": "assistant", "content": "hi"}]}, "messages[0].role"),
    ({"model": 3}, "model"),
])
def test_a_wrong_field_is_a_400_naming_it(server, extra, param):
    body = {"model": "chokepoint-extractive", "messages": [{"role": "user", "content": CHIP_Q}], **extra}
    response = server.post("/chat/completions", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and f"'{param}'" in error["message"]
    assert error["type"] == "invalid_request_error"


def test_bad_json_and_the_sdk_see_openai_style_errors(server):
    response = server.post("/chat/completions", content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]["message"]
    with pytest.raises(openai.BadRequestError) as caught:
        server.client().chat.completions.create(model="chokepoint", extra_body={"k": "five"},
                                                messages=[{"role": "user", "content": CHIP_Q}])
    assert caught.value.body["param"] == "k"


def test_an_unknown_model_is_refused(server):
    with pytest.raises(openai.NotFoundError) as caught:
        server.client().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": CHIP_Q}])
    assert caught.value.body["param"] == "model" and "chokepoint-extractive" in caught.value.body["message"]


def test_a_missing_or_wrong_token_is_refused(server):
    for token in (None, "wrong-token"):
        response = server.post("/index", token=token)
        assert response.status_code == 401, response.text
        assert "CHOKEPOINT_API_TOKEN" in response.json()["error"]["message"]
        with pytest.raises(openai.AuthenticationError):
            server.client(token=token).models.list()


# --- the LangChain retriever, in process ------------------------------------------------------------

@pytest.fixture
def local_engine(make_settings, embedder, tmp_path):
    settings = make_settings()
    write_note(settings.sources_dir, "fab.md", "The Varnholt fab",
               "The Varnholt fab opened in 2019. It makes 28 nm logic chips for carmakers.",
               publisher="Daily Gazette", date="2019-05-02", topics=["semiconductors"])
    write_note(settings.sources_dir, "port.md", "The Kestrel port",
               "The Kestrel port handled 4 million containers in 2020. Its cranes come from Shanghai.",
               publisher="Harbour Weekly", date="2021-01-10", topics=["logistics"])
    return indexed_engine(settings, embedder)


def test_the_retriever_works_in_an_lcel_chain(local_engine):
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_core.runnables import RunnableLambda, RunnablePassthrough

    from index.filters import Filters
    from service.retriever import ChokepointRetriever, format_passages

    retriever = ChokepointRetriever.from_engine(local_engine, k=2)
    documents = retriever.invoke("What does the Varnholt fab make?")
    top = documents[0]
    assert top.metadata["source"] == "fab.md" and top.metadata["publisher"] == "Daily Gazette"
    assert top.metadata["topics"] == ["semiconductors"] and top.metadata["end"] > top.metadata["start"]
    assert "28 nm" in top.page_content

    filtered = ChokepointRetriever.from_engine(local_engine, filters=Filters(publishers=("Harbour Weekly",)))
    assert {d.metadata["source"] for d in filtered.invoke("What does the Varnholt fab make?")} == {"port.md"}

    prompt = ChatPromptTemplate.from_messages([
        ("system", "Answer from the passages only and cite them as [n].\n\n{context}"), ("user", "{question}")])
    # Stands in for ChatOpenAI (the embedded LLM is slow here): it answers with the first passage it was shown.
    def first_passage_sentence(value) -> str:
        passage = value.to_messages()[0].content.split("[1] ", 1)[1]
        return next(line for line in passage.splitlines()[1:] if line and not line.startswith("#")) + " [1]"

    llm = RunnableLambda(first_passage_sentence)
    chain = ({"context": retriever | format_passages, "question": RunnablePassthrough()}
             | prompt | llm | StrOutputParser())
    answer = chain.invoke("What does the Varnholt fab make?")
    assert "28 nm" in answer and answer.endswith("[1]")

    with pytest.raises(ValueError, match="CHOKEPOINT_MAX_PASSAGES"):
        ChokepointRetriever.from_engine(local_engine, k=500).invoke("fab")


def test_indexing_is_refused_without_a_configured_token(local_engine):
    from fastapi.testclient import TestClient

    from service.api import create_app

    assert local_engine.settings.api_token is None
    with TestClient(create_app(local_engine)) as client:
        response = client.post("/v1/index", headers={"Authorization": "Bearer anything"})
        assert response.status_code == 403
        assert "CHOKEPOINT_API_TOKEN" in response.json()["error"]["message"]
        assert client.get("/v1/models").status_code == 200  # reads are open when no token is set
        assert "access-control-allow-origin" not in client.get("/v1/models", headers={"Origin": "http://x"}).headers


# --- concurrency --------------------------------------------------------------------------------------

STREAM_QUESTIONS = [  # (question, a fact the answer must give)
    (MERGER_Q, "2021"),
    (CHIP_Q, "15.9%"),
    ("How many African countries take part in Smart Africa?", ""),
    ("Who hired Yukio Sakamoto for memory chips?", "Sakamoto"),
] * 2


@pytest.mark.slow
@pytest.mark.serial  # the streams must run while the reindex embeds: timed against each other
def test_eight_streams_during_a_reindex_all_complete(server):
    # Enough new files that the reindex is still embedding while all eight streams run.
    added = sorted(p.name for p in SOURCES.glob("*.md") if p.name not in FILES and p.name != "README.md")
    copy_notes(server.sources, added)
    results: list[tuple[str, str, dict | None, BaseException | None]] = []
    lock = threading.Lock()

    def ask(question: str) -> None:
        text, citations, error = "", None, None
        started = time.monotonic()
        try:
            for chunk in server.client().chat.completions.create(
                    model="chokepoint-extractive", stream=True, messages=[{"role": "user", "content": question}]):
                text += chunk.choices[0].delta.content or ""
                if chunk.choices[0].finish_reason == "stop":
                    citations = chunk.model_extra["citations"]
        except BaseException as exc:  # reported below, with the question
            error = exc
        with lock:
            results.append((question, text, citations, error))
            spans[f"stream{len(results)}"] = started
            spans[f"ended{len(results)}"] = time.monotonic()

    report: dict = {}

    spans: dict[str, float] = {}

    def reindex() -> None:
        spans["index_start"] = time.monotonic()
        report.update(server.post("/index").json())
        spans["index_end"] = time.monotonic()

    indexer = threading.Thread(target=reindex)
    indexer.start()
    time.sleep(0.5)  # let the reindex take the lock first
    clients = [threading.Thread(target=ask, args=(q,)) for q, _ in STREAM_QUESTIONS]
    for thread in clients:
        thread.start()
    for thread in [*clients, indexer]:
        thread.join(timeout=600)
    assert sorted(report.get("added", [])) == sorted(added), report
    assert len(results) == len(STREAM_QUESTIONS)
    # The streams ran while the reindex did: all began before it ended, and some ended before it did.
    assert all(t < spans["index_end"] for k, t in spans.items() if k.startswith("stream")), spans
    assert any(t < spans["index_end"] for k, t in spans.items() if k.startswith("ended")), spans
    expected = dict(STREAM_QUESTIONS)
    for question, text, citations, error in results:
        assert error is None, f"{question}: {error!r}"
        assert citations is not None and not citations["refused"], (question, citations)
        assert expected[question] in text and "[1]" in text, (question, text)
    # The reindexed files are answerable once it has finished.
    body = _raw_citations(server, "Which ten sectors does Made in China 2025 prioritise?")
    assert any(i["source"] == "made-in-china-2025-overview.md" for i in body["citations"]["items"])


def test_content_parts_and_a_second_index_request_are_handled(server):
    parts = [{"type": "text", "text": MERGER_Q}, {"type": "image_url", "image_url": {"url": "data:,"}}]
    reply = server.post("/chat/completions", json={"model": "chokepoint-extractive",
                                                   "messages": [{"role": "user", "content": parts}]})
    assert reply.status_code == 200 and "[1]" in reply.json()["choices"][0]["message"]["content"]
    # Nothing changed since the fixture indexed: the CLI's report says so.
    report = server.post("/index", json={"rebuild": False}).json()
    assert report["added"] == [] and report["unchanged"] >= len(FILES) and "summary" in report
    assert server.post("/index", json={"rebuild": "yes"}).json()["error"]["param"] == "rebuild"
