# Two set-up commands for a fresh machine: `make demo` and `make test`. Both create .venv and
# install what they need (build tools, numpy, the package itself built from source).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
SOURCES := $(shell find cpp bindings python -type f \( -name '*.cpp' -o -name '*.h' -o -name '*.py' \)) CMakeLists.txt pyproject.toml

.PHONY: all install demo test test-cpp bench bench-wordnet clean

all: install

$(VENV)/.tools:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "scikit-build-core>=0.10" "pybind11>=2.12" ninja "cmake>=3.18" "numpy>=1.23" "pytest>=7" "hypothesis>=6"
	$(PIP) install -q "tqdm>=4.60" "fastapi>=0.110" "pydantic>=2.10" "uvicorn[standard]>=0.29" "prometheus-client>=0.20" "httpx>=0.27" \
	  "orjson>=3.9" "msgspec>=0.18" "fastapi-offline>=1.7" "schemathesis>=4.0"
	touch $@

# The 'ray' extra for adanns.cluster and its tests (tests/test_cluster_*.py): Ray Data and Serve, pyarrow.
$(VENV)/.ray: $(VENV)/.tools
	$(PIP) install -q "ray[data,serve]>=2.50" "pyarrow>=14"
	touch $@

# Rebuilt when any source changes. Incremental: without build isolation the build tools are the ones in
# .venv, so CMake's state in build/{wheel_tag} stays valid and only what changed recompiles (1-3 s for one
# C++ file; an isolated `pip install .` gets new tool paths each time and rebuilds the whole core).
$(VENV)/.installed: $(VENV)/.tools $(SOURCES)
	$(PIP) install -q --no-build-isolation --no-deps .
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) -m adanns.demo --data tests/data/wordnet-sample

test: install $(VENV)/.ray test-cpp
	$(PY) -m pytest -q tests

# The core alone, under AddressSanitizer and UBSan: every SIMD level against the scalar oracle,
# an IVF file round trip, corrupted files refused.
test-cpp: $(VENV)/.tools
	$(VENV)/bin/cmake -S . -B build/cpp-tests -G Ninja -DCMAKE_MAKE_PROGRAM=$(abspath $(VENV)/bin/ninja) \
	  -DADANNS_PYTHON=OFF -DADANNS_CPP_TESTS=ON -DADANNS_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug > /dev/null
	$(VENV)/bin/cmake --build build/cpp-tests
	./build/cpp-tests/adanns_cpp_tests

# Peers for the benchmarks (faiss-cpu, hnswlib, matplotlib); not needed by demo or test.
bench: install
	$(PIP) install -q faiss-cpu hnswlib matplotlib
	$(PY) benchmarks/ivf_vs_faiss.py

# `adanns bench` on the shared WordNet corpus: QUICK=--quick (default) or QUICK= for the default sweep.
DATA ?= ../shared/data/wordnet-minilm
QUICK ?= --quick
bench-wordnet: install
	$(PIP) install -q faiss-cpu hnswlib matplotlib
	$(VENV)/bin/adanns bench --base $(DATA)/base.npy --queries $(DATA)/queries.npy \
	  --labels-base $(DATA)/labels_base.npy --labels-queries $(DATA)/labels_queries.npy --name wordnet-minilm \
	  --out benchmarks/results/wordnet-minilm$(if $(QUICK),-quick,) $(QUICK)

clean:
	rm -rf build $(VENV)
