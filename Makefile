# Bloop: `make serve` runs the platform on embedded stores; `make test` runs the whole suite
# against real servers that infra/ installs and starts.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: install serve test lint typecheck bench notebooks infra-up infra-down lock clean

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $@

# GraphiQL's scripts, from the npm registry; without them the IDE loads them from unpkg.com.
GRAPHIQL := bloop/graphql/ide_assets/.fetched
$(GRAPHIQL): bloop/graphql/ide.py bloop/graphql/ide_fetch.py $(BIN)/.installed
	$(BIN)/python -m bloop.graphql.ide_fetch && touch $@ || true

install: $(BIN)/.installed $(GRAPHIQL)

# Narration and video: Debian packages first (pycairo and manimpango build against them), then Manim.
$(BIN)/.video-installed: infra/media.sh pyproject.toml constraints.txt $(BIN)/.installed
	bash infra/media.sh
	$(BIN)/pip install -q -c constraints.txt -e '.[video]'
	touch $@

serve: install
	$(BIN)/bloop serve

test: install $(BIN)/.video-installed
	bash infra/run-tests.sh

# JupyterLab on the notebooks, in the project's environment (the tests run them without it).
notebooks: install
	$(BIN)/pip install -q jupyterlab
	$(BIN)/jupyter lab notebooks/

lint: install
	$(BIN)/ruff check bloop tests bench

typecheck: install
	$(BIN)/mypy

bench: install
	$(BIN)/bloop infra up kafka mongo redis neo4j
	$(BIN)/python bench/events.py
	$(BIN)/python bench/content.py
	$(BIN)/python bench/learning.py

# After changing dependencies: install them (without constraints), pass `make test`, then this.
lock: install $(BIN)/.video-installed
	{ sed -n '1,2p' constraints.txt; $(BIN)/pip freeze --exclude-editable; } > constraints.new
	mv constraints.new constraints.txt

infra-up: install
	$(BIN)/bloop infra up

infra-down: install
	$(BIN)/bloop infra down

clean:
	rm -rf $(VENV) .bloop .mypy_cache .ruff_cache .pytest_cache
