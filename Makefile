# envctl — the two entry points of the README, and what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test venv engine clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# The CPU reference workflow: every shipped manifest validated, then the exact plan `up` will
# execute for chatglm-tiny-cpu on this machine.
demo: $(STAMP)
	$(BIN)/envctl validate
	$(BIN)/envctl plan chatglm-tiny-cpu

# A Docker engine for the integration tests: installed and started when missing (root, Debian).
engine:
	bash tests/ensure-engine.sh

test: $(STAMP) engine
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .pytest_cache
