"""LLM benchmark: time to first token, tokens/s and prompt size with the embedded model.

    python benchmarks/bench_llm.py [--size 1.5b] [--questions 8] [--threads 2]

Runs the answerable single-turn questions of ``evals/sets/sample.jsonl`` through the real
pipeline (hybrid retrieval, the reader's shortlisted sentences, the embedded llama.cpp server,
verification) on the default corpus, indexing it first if needed. Time to first token is counted
from the moment the question is asked to the first character of answer text the user sees (the
reader's JSON framing is not shown), so it includes retrieval, the prompt's prefill and the few
tokens of JSON before the answer. The first question runs with a cold prompt cache; later ones
reuse the cached system prompt. Figures land in ``benchmarks/out/llm-<size>.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

# benchmarks.common sets the offline environment; models and Chroma are imported inside functions, after it.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import ROOT, load_average


def model_tokens(base_url: str, text: str) -> int | None:
    """Tokens the served model reads for ``text`` (llama.cpp's /tokenize), or None if unsupported."""
    root = base_url.removesuffix("/v1")
    request = urllib.request.Request(f"{root}/tokenize", data=json.dumps({"content": text}).encode(),
                                     headers={"Content-Type": "application/json"})
    # The embedded server is on loopback: a proxy from the environment must not carry the request.
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with direct.open(request, timeout=30) as reply:
            return len(json.loads(reply.read())["tokens"])
    except (OSError, ValueError, KeyError):
        return None


def questions(count: int) -> list[str]:
    cases = [json.loads(line) for line in (ROOT / "evals" / "sets" / "sample.jsonl").read_text().splitlines() if line]
    return [c["question"] for c in cases if c.get("answerable", True) and not c.get("history")][:count]


def run(size: str, count: int, threads: int) -> dict[str, Any]:
    from assistant.engine import Engine, chat_model
    from assistant.pipeline import Token
    from index.settings import Settings
    from index.tokens import count_tokens

    settings = Settings(llm_size=size, llm_threads=threads)
    engine = Engine(settings)
    engine.reindex()
    started = time.perf_counter()
    model = chat_model(settings)  # assembles the model file if needed and starts the server
    start_s = time.perf_counter() - started
    answerer = engine.answerer("llm")
    rows = []
    for question in questions(count):
        asked = time.perf_counter()
        stamps: list[float] = []
        answer = None
        for event in engine.pipeline.stream(answerer, question):
            if isinstance(event, Token):
                stamps.append(time.perf_counter())
            else:
                answer = event
        assert answer is not None
        context = answerer.passages_for_prompt(answer.query, list(answer.passages))
        prompt = "\n".join(text for _, text in answerer.prompt(answer.query, context))
        # Each streamed event of llama.cpp's server carries one token (a token of the reader's JSON
        # framing yields no text, so it is not counted).
        decode_s = stamps[-1] - stamps[0] if len(stamps) > 1 else 0.0
        rows.append({
            "question": question,
            "first_token_s": round(stamps[0] - asked, 3) if stamps else None,
            "retrieval_s": round(answer.timings.retrieval_s, 3),
            "total_s": round(time.perf_counter() - asked, 2),
            "generated_tokens": len(stamps),
            "tokens_per_s": round((len(stamps) - 1) / decode_s, 2) if decode_s else None,
            "prompt_tokens_cl100k": count_tokens(prompt),
            "prompt_tokens_model": model_tokens(str(model.openai_api_base), prompt),
            "passages_in_prompt": len(context),
            "json_reader": answerer.free_text_because is None,
            "refused": answer.refused,
            "answer": answer.text,
            "load_average": load_average(),
        })
        print(json.dumps(rows[-1]), flush=True)
    warm = rows[1:] or rows
    return {
        "model": size, "threads": threads, "server_start_s": round(start_s, 2),
        "first_question": rows[0] if rows else None,
        "first_token_s_p50_warm": statistics.median(r["first_token_s"] for r in warm if r["first_token_s"]),
        "first_token_s_max_warm": max(r["first_token_s"] for r in warm if r["first_token_s"]),
        "total_s_p50_warm": statistics.median(r["total_s"] for r in warm),
        "refused": sum(r["refused"] for r in rows),
        "tokens_per_s_p50": statistics.median(r["tokens_per_s"] for r in rows if r["tokens_per_s"]),
        "prompt_tokens_model_p50": statistics.median(r["prompt_tokens_model"] or 0 for r in rows),
        "prompt_tokens_model_max": max(r["prompt_tokens_model"] or 0 for r in rows),
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1.5b", choices=["1.5b", "0.5b"])
    parser.add_argument("--questions", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2, help="llama.cpp threads (CHOKEPOINT_LLM_THREADS)")
    args = parser.parse_args()
    figures = run(args.size, args.questions, args.threads)
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"llm-{args.size}.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps({k: v for k, v in figures.items() if k != "rows"}, indent=2))


if __name__ == "__main__":
    main()
