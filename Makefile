# envctl — the two entry points of the README, and what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo demo-nodes demo-slurm test venv engine clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# The CPU reference workflow end to end: image, weights and dataset through a loopback HF
# mirror, up, train, infer (demo/run_demo.py says what each step does).
demo: $(STAMP) engine
	$(BIN)/python demo/run_demo.py

# One training of that workflow across two servers of the SSH lab (real sshd and Docker engine
# each, one subnet): up on both, then exec train --nodes (demo/run_demo_nodes.py). Root, Debian.
demo-nodes: $(STAMP) engine
	$(BIN)/python demo/run_demo_nodes.py

# The same training handed to a real Slurm on two servers of the SSH lab: up on both, export
# --format slurm, sbatch (demo/run_demo_slurm.py). Root, Debian.
demo-slurm: $(STAMP) engine
	$(BIN)/python demo/run_demo_slurm.py

# A Docker engine for the demo and the integration tests, and OpenSSH + iproute2 for the SSH
# lab of the remote-host tests: installed (and the engine started) when missing (root, Debian).
# A second engine, a current Docker with the containerd image store, runs beside it in its own
# namespaces (tests/ensure-containerd-engine.sh): the integration tests run against both.
# Debian's Slurm and MUNGE (tests/ensure-slurm.sh) for the Slurm cluster the lab starts on two of
# its hosts (tests/sshlab_slurm.py).
# Debian's docker-registry (Distribution 2.8, tests/ensure-registry.sh) for the registry tests'
# origins and mirrors on loopback (tests/servers/registry.py).
engine:
	bash tests/ensure-engine.sh
	bash tests/ensure-containerd-engine.sh
	bash tests/ensure-ssh.sh
	bash tests/ensure-slurm.sh
	bash tests/ensure-registry.sh

# The unit tests (pure code: no engine, image or SSH lab) in two processes at once (pytest-xdist),
# then the rest in one, since those share the engines, fixed image refs and the lab. Both always
# run; the target fails when either did.
test: $(STAMP) engine
	$(BIN)/python -m pytest -n 2 tests/unit; unit=$$?; \
	$(BIN)/python -m pytest --ignore=tests/unit; rest=$$?; \
	test $$unit -eq 0 && test $$rest -eq 0

clean:
	rm -rf $(VENV) .pytest_cache
