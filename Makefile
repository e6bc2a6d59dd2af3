# Two commands do all the set-up on a fresh machine:
#   make app    create .venv, install, index sources/ (incremental), run the Streamlit chat
#   make test   create .venv, install, run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PORT   ?= 8501
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export ANONYMIZED_TELEMETRY := False

.PHONY: app test install index lint bench bench-full eval eval-public clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Re-install whenever pyproject.toml changes. torch goes first and pinned: it is the CPU
# build on this disk; left to the resolver, a dependency would pull a multi-GB CUDA build.
# setuptools warns on every editable install that a folder named like a package may shadow it:
# true of any editable install, and nothing a newcomer can act on, so that one warning is hidden.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet torch==2.13.0
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/pip install --quiet -e '.[llm,llm-small,mcp,dev]'
	touch $@

install: $(VENV)/.installed

index: install
	$(BIN)/chokepoint index || [ $$? -eq 3 ]

app: index
	$(BIN)/streamlit run app.py --server.address 127.0.0.1 --server.port $(PORT) \
		--server.headless true --browser.gatherUsageStats false

# Two passes: the suite in two workers (xdist), then the tests marked serial, alone, as they measure time
# or kill processes. Both run whatever the first gave; the first failure's status is the result.
test: install
	@status=0; \
	$(BIN)/python -m pytest -n 2 --dist loadgroup -m "not serial" $(PYTEST_ARGS) || status=$$?; \
	$(BIN)/python -m pytest -n 0 -m serial $(PYTEST_ARGS) || { second=$$?; [ $$status -ne 0 ] || status=$$second; }; \
	exit $$status

lint: install
	$(BIN)/ruff check .

# Quick versions (about 10 minutes on an idle 2-core machine; the 1k corpus is cached under
# .chokepoint/bench after the first run). bench-full adds the 10k and 100k corpora: the first
# build of those embeds for a long time (see BENCHMARKS.md), later runs only measure.
bench: install
	$(BIN)/python benchmarks/bench_indexing.py --copies 2
	$(BIN)/python benchmarks/bench_query.py --sizes 1000

bench-full: install
	$(BIN)/python benchmarks/bench_indexing.py --copies 3
	$(BIN)/python benchmarks/bench_query.py --sizes 1000,10000,100000

eval: install
	$(BIN)/chokepoint eval --set evals/sets/default.jsonl --out evals/out/latest

# The public dev sets (../shared/evaldata): each is indexed into a data dir of its own and written to
# an output folder of its own (both sets are named set.jsonl). ANSWERER=extractive,llm LIMIT=20 for more.
EVALDATA ?= ../shared/evaldata
PUBLIC_SETS ?= hotpotqa-dev clapnq-dev
ANSWERER ?= extractive
eval-public: install
	@for name in $(PUBLIC_SETS); do \
	  test -f $(EVALDATA)/$$name/set.jsonl || { echo "$(EVALDATA)/$$name/set.jsonl is missing: put the shared eval data beside the project" >&2; exit 2; }; \
	  export CHOKEPOINT_SOURCES_DIR=$(EVALDATA)/$$name/sources CHOKEPOINT_DATA_DIR=.chokepoint/eval/$$name \
	    CHOKEPOINT_LLM_MODELS_DIR=$${CHOKEPOINT_LLM_MODELS_DIR:-.chokepoint/models}; \
	  $(BIN)/chokepoint index > /dev/null && \
	  $(BIN)/chokepoint eval --set $(EVALDATA)/$$name/set.jsonl --answerer $(ANSWERER) \
	    $(if $(LIMIT),--limit $(LIMIT)) --out evals/out/$$name || exit $$?; \
	done

clean:
	rm -rf .chokepoint .pytest_cache
