# The two set-up commands of the README: `make demo` and `make test` (each creates .venv when needed).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

# What ruff lints and formats (docs/ holds the mkdocs hook and the runnable examples).
LINT_PATHS := src tests tools benchmarks docs
# Where `make docs` writes the site (git-ignored); CI builds into a temporary directory instead.
DOCS_OUT ?= build/site

.PHONY: install demo test test-slow bench lint docs clean

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

# The house rules: ruff's lint and format, and the import contracts of .importlinter.
lint: $(STAMP)
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check --output-format concise $(LINT_PATHS)  # `ruff format` fixes them
	$(BIN)/lint-imports

# The documentation site, warnings as errors (a broken link or docstring reference fails the build).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir $(DOCS_OUT)

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache .import_linter_cache $(DOCS_OUT)
