VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

.PHONY: demo test lint bench clean

$(PY):
	python3 -m venv $(VENV)

# pip byte-compiles everything it installs, on one core (about 40 s of torch and its dependencies). The demo
# skips that: Python compiles the modules a run imports when it imports them. The tests start many Python
# processes, so their install compiles everything, on all cores (compileall skips what is already compiled).
COMPILE = $(PY) -m compileall -q -j 0 "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" > /dev/null || true

$(VENV)/.installed: $(PY) pyproject.toml
	$(PIP) install -q --no-compile -e .
	touch $@

$(VENV)/.installed-test: $(PY) pyproject.toml
	$(PIP) install -q --no-compile -e ".[test]"
	$(PIP) install -q --no-compile --no-deps "libreyolo>=1.6"
	$(COMPILE)
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
