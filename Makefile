# layertap developer commands. Every target creates .venv and installs the project into it first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# The suite runs on two worker processes, each taking whole modules, longest first (tests/scheduling.py).
# TEST_WORKERS=0 runs it in this one process, in pytest's own order.
TEST_WORKERS ?= 2
XDIST := -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

.PHONY: install demo test test-fast lint docs proto bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[tf,dev,bench,plot,jax,gcs,s3,keras2,kerashub,docs,extract,beam,ray]'
	touch $(STAMP)

install: $(STAMP)

## The main job end to end: train the tutorial CNN, export layers, serve them locally, query them.
demo: $(STAMP)
	$(PY) -m layertap.demo

test: $(STAMP)
	$(PY) -m pytest $(XDIST) $(PYTEST_ARGS)

## The inner loop: every test not marked slow (CI runs them all).
test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow" $(XDIST) $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy --strict src/layertap
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict  # not --quiet: it hides warnings from --strict

## The documentation site (mkdocs.yml: docs/ pages, BENCHMARKS.md, the API reference) into site/.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

## Regenerate src/layertap/proto/*_pb2.py(i) after editing serving.proto or graph.proto.
proto: $(STAMP)
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) tools/gen_proto.py

bench: $(STAMP)
	$(PY) -m bench

clean:
	rm -rf $(VENV) build dist site src/*.egg-info .pytest_cache .mypy_cache .ruff_cache demo_models
