# Set-up and checks. Every target is idempotent and installs what it needs.
VENV    := .venv
PY      := $(VENV)/bin/python
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
# The CPU build of torch on this machine's disk: installed first, through the
# constraints file, so nothing resolves torch to a multi-GB CUDA build.
PIP     := $(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt

.PHONY: install demo test docs bench clean

install: $(STAMP)

# pip compiles each package's modules on one core as it installs them; compileall then
# does them all on every core (-qq: torch ships a few files for newer Pythons, which do
# not compile under pip either). Never skipped: every later import would pay for it.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) --no-compile "torch==2.13.0"
	$(PIP) --no-compile -e ".[dev]"
	$(PY) -m compileall -qq -j 0 "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" || true
	touch $(STAMP)

demo: install
	test -d demo || $(BIN)/serotiny init demo --description "the serotiny demo project"
	cd demo && ../$(BIN)/serotiny train trainer.max_epochs=5
	@echo
	@echo "Runs are in demo/mlflow.db (artifacts in demo/mlartifacts). Open the MLflow UI with:"
	@echo "  $(BIN)/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/demo/mlflow.db"

test: install
	$(PY) -m pytest

docs: install
	$(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html

bench: install
	for script in bench/[!_]*.py; do $(PY) $$script || exit 1; done

clean:
	rm -rf $(VENV) demo docs/_build
