# MLPerf-style BERT SQuAD v1.1 harness. `make help` lists the targets.
PYTHON_BOOT ?= python3
VENV        ?= .venv
PY          := $(VENV)/bin/python
SCENARIO    ?= Offline
BACKEND     ?= onnxruntime
MODEL       ?= minilm-l6-squad-demo
BATCH       ?=
THREADS     ?= 0
SHORT       ?= 1
MAX_EXAMPLES ?=
MIRROR      ?= ../shared/squad
SYSTEM      ?=
TARGET_QPS  ?=
TARGET_LATENCY_MS ?=
ARGS        ?=
SCENARIOS   ?=
BENCHMARK   ?= bert-99
SWEEP       ?= sweeps/server-ort.toml
SETTINGS    ?=
TARGET      ?= bert-99
BUDGET      ?= 30
V10         ?= ../.mirror/mlcommons+inference_results_v1.0/repo
V11         ?= ../.mirror/mlcommons+inference_results_v1.1/repo

# Values are quoted for the shell: a MODEL or MIRROR path or a SYSTEM name may hold spaces.
q = '$(subst ','"'"',$(1))'
# With SETTINGS=FILE (e.g. tune's tuned.toml) the file's values stand, but for the variables
# given on make's command line: make run SETTINGS=f BATCH=4
given = $(if $(SETTINGS),$(filter command line environment override,$(origin $(1))),yes)
RUN_FLAGS = $(if $(SETTINGS),--settings $(call q,$(SETTINGS))) \
	$(if $(call given,SCENARIO),--scenario $(call q,$(SCENARIO))) \
	$(if $(call given,BACKEND),--backend $(call q,$(BACKEND))) \
	$(if $(call given,MODEL),--model $(call q,$(MODEL))) $(if $(BATCH),--batch-size $(call q,$(BATCH))) \
	$(if $(call given,THREADS),--threads $(call q,$(THREADS))) \
	--mirror $(call q,$(MIRROR)) $(if $(filter 1,$(SHORT)),--short) \
	$(if $(MAX_EXAMPLES),--max-examples $(call q,$(MAX_EXAMPLES))) \
	$(if $(SYSTEM),--system $(call q,$(SYSTEM))) \
	$(if $(TARGET_QPS),--target-qps $(call q,$(TARGET_QPS))) \
	$(if $(TARGET_LATENCY_MS),--target-latency-ms $(call q,$(TARGET_LATENCY_MS))) $(ARGS)

.PHONY: help install data model run accuracy agree tune sweep compare published published-table report submission test test-fast lint bench bench-tune bench-offline bench-backends bench-wafer clean

help: ## list targets and variables
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'
	@echo "variables: SCENARIO=$(SCENARIO) (Offline|Server|SingleStream|MultiStream)"
	@echo "           BACKEND=$(BACKEND) MODEL=$(MODEL) BATCH=$(or $(BATCH),auto) THREADS=$(THREADS)"
	@echo "           SHORT=$(SHORT) (1: 10 s short run, INVALID for submissions; 0: MLPerf rules)"
	@echo "           MAX_EXAMPLES=N (first N questions) MIRROR=$(MIRROR) SYSTEM=name ARGS=..."
	@echo "           TARGET_QPS=N TARGET_LATENCY_MS=N (default: sized from the warm-up)"
	@echo "           BENCHMARK=$(BENCHMARK) SCENARIOS=$(or $(SCENARIOS),required) (make submission)"
	@echo "           SWEEP=$(SWEEP) (make sweep; ARGS=--find-peak) A=... B=... (make compare)"
	@echo "           TARGET=$(TARGET) BUDGET=$(BUDGET) (make tune: bert-99, bert-99.9 or N%; minutes)"
	@echo "           SETTINGS=FILE (run, accuracy, sweep, submission: e.g. results/tune/MODEL/SCENARIO/tuned.toml)"
	@echo "every run setting (ARGS=\"--flag value\"), generated from its declaration:"
	@if [ -x $(PY) ]; then $(PY) -m harness settings; else echo "  (make install first)"; fi

$(VENV)/.installed: pyproject.toml
	$(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[onnx,export,torch,tf,ray,dev]'
	touch $@

install: $(VENV)/.installed ## create .venv and install the harness with all extras

data: install ## fetch + md5-verify dev-v1.1.json and vocab.txt, build the feature cache
	$(PY) -m harness data --mirror $(call q,$(MIRROR))

model: install ## fetch/export MODEL into models/store (zenodo files need a network)
	$(PY) -m harness model --model $(call q,$(MODEL)) $(if $(filter-out onnxruntime,$(BACKEND)),--backend $(BACKEND))

run: install ## LoadGen performance run: make run SCENARIO=Offline
	$(PY) -m harness run $(RUN_FLAGS)

accuracy: install ## LoadGen accuracy run + EM/F1: make accuracy MAX_EXAMPLES=2804
	$(PY) -m harness accuracy $(RUN_FLAGS)

agree: install ## every backend on the same features: logits, answers, F1 (MODEL=a,b)
	$(PY) -m harness agree --model $(call q,$(MODEL)) --mirror $(call q,$(MIRROR)) \
		$(if $(MAX_EXAMPLES),--max-examples $(call q,$(MAX_EXAMPLES))) $(ARGS)

tune: install ## fastest settings that keep the F1 target: make tune [SCENARIO=Server TARGET=bert-99.9 BUDGET=30]
	$(PY) -m harness tune --model $(call q,$(MODEL)) --scenario $(call q,$(SCENARIO)) \
		--target $(call q,$(TARGET)) --budget-minutes $(call q,$(BUDGET)) --mirror $(call q,$(MIRROR)) \
		$(if $(MAX_EXAMPLES),--max-examples $(call q,$(MAX_EXAMPLES))) $(ARGS)

sweep: install ## run a sweep file's points, table + plots + report: make sweep SWEEP=sweeps/x.toml
	$(PY) -m harness sweep $(call q,$(SWEEP)) --mirror $(call q,$(MIRROR)) \
		$(if $(SETTINGS),--settings $(call q,$(SETTINGS))) $(ARGS)

compare: install ## every figure of two runs or sweeps: make compare A=folder B=folder (no A: what there is; ARGS="--fail-below 5")
	$(PY) -m harness compare $(if $(A),$(call q,$(A))) $(if $(B),$(call q,$(B))) $(ARGS)

published: install ## published MLPerf v1.0/v1.1 BERT results: make published ARGS="--scenario Offline"
	$(PY) -m harness published $(ARGS)

published-table: install ## rebuild harness/published/bert_results.csv from local repos V10=... V11=...
	$(PY) -m harness.published.build v1.0=$(call q,$(V10)) v1.1=$(call q,$(V11))

report: install ## results/index.html: every run, filters, metric over time, published placement
	$(PY) -m harness report

submission: install ## MLPerf tree in submission/ (runs what is missing, TEST01/05), then check it (exit 1 on a FAIL)
	$(PY) -m harness submission --benchmark $(call q,$(BENCHMARK)) \
		$(if $(SETTINGS),--settings $(call q,$(SETTINGS))) \
		$(if $(call given,BACKEND),--backend $(call q,$(BACKEND))) \
		$(if $(call given,MODEL),--model $(call q,$(MODEL))) $(if $(BATCH),--batch-size $(call q,$(BATCH))) \
		$(if $(call given,THREADS),--threads $(call q,$(THREADS))) --mirror $(call q,$(MIRROR)) \
		$(if $(filter 1,$(SHORT)),--short) $(if $(SCENARIOS),--scenarios $(call q,$(SCENARIOS))) \
		$(if $(MAX_EXAMPLES),--max-examples $(call q,$(MAX_EXAMPLES))) \
		$(if $(SYSTEM),--system $(call q,$(SYSTEM))) $(ARGS)

test: install ## run the test suite (what CI runs)
	$(PY) -m pytest -q

test-fast: install ## run the tests except those marked slow
	$(PY) -m pytest -q -m "not slow"

lint: install ## ruff
	$(PY) -m ruff check .

bench: install ## throughput: reference-style loop vs the harness, each optimisation, Ray, ceilings
	$(PY) benchmarks/bench_throughput.py $(if $(MAX_EXAMPLES),--max-examples $(MAX_EXAMPLES))

bench-tune: install ## what tune finds, as a ratio to the fp32 default: make bench-tune [ARGS="--standin bert-large"]
	$(PY) benchmarks/bench_tune.py --budget-minutes $(call q,$(BUDGET)) $(ARGS)

bench-offline: install ## feature building, and Offline samples/s by batch size
	$(PY) benchmarks/bench_offline.py

bench-backends: install ## samples/s of every backend, fp32 and int8, on the demo model
	$(PY) benchmarks/bench_backends.py

bench-wafer: install ## the highest completion rate the wafer backend sustains here (vs its plan)
	$(PY) benchmarks/bench_wafer.py

clean: ## remove caches and exported models (keeps results/ and the venv)
	rm -rf datasets/cache models/store build .pytest_cache
