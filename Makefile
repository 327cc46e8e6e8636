VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

.PHONY: demo test lint bench clean

$(PY):
	python3 -m venv $(VENV)

$(VENV)/.installed: $(PY) pyproject.toml
	$(PIP) install -q -e .
	touch $@

$(VENV)/.installed-test: $(PY) pyproject.toml
	$(PIP) install -q -e ".[test]"
	$(PIP) install -q --no-deps "libreyolo>=1.6"
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/trainwright train

test: $(VENV)/.installed-test
	$(PY) -m pytest -q -n 2

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check .

bench: $(VENV)/.installed
	$(PIP) install -q -e ".[bench]"
	for b in nms map trainer_overhead yolox data; do $(PY) benchmarks/$$b.py || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
