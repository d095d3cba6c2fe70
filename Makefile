# The two set-up commands of the README: `make demo` and `make test` (each creates .venv when needed).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test test-slow bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# constraints.txt pins the CPU build of torch; without it pip pulls a multi-GB CUDA build.
	$(BIN)/pip install --quiet -c constraints.txt -e '.[all,dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/medlearn demo $(DEMO_ARGS)

test: $(STAMP)
	$(BIN)/pytest -q $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(BIN)/pytest -q -m slow $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python benchmarks/imaging_train.py

clean:
	rm -rf $(VENV) runs .pytest_cache
