"""pytest fixtures for the SSH lab (tests/sshlab.py).

- `lab_session`: one lab for the whole session: lab1, lab2, lab3 reachable from the test
  process, hidden1 only through lab1 (ProxyJump), each with its own sshd and Docker engine.
  Built on first use (about a second), taken apart at the end of the session.
- `lab`: the same lab for one test, restored afterwards (known_hosts, delays, partitions,
  stopped hosts: `Lab.reset()`), so a test may break things freely through the lab's helpers.
- `containerd_lab`: a lab of one host, lab1, whose engine is the newer Docker with the
  containerd image store (tests/ensure-containerd-engine.sh), for the session.

Tests in tests/remote/ get them from tests/remote/conftest.py; elsewhere import them:
`from sshlab_fixtures import lab, lab_session  # noqa: F401`.

A lab that cannot be built fails every test using it with the reason; it never skips.
"""

from __future__ import annotations

import pytest

from sshlab import Lab, LabError

SESSION_HOSTS = 3
SESSION_HIDDEN = 1


@pytest.fixture(scope="session")
def lab_session():
    try:
        lab = Lab(hosts=SESSION_HOSTS, hidden=SESSION_HIDDEN)
    except LabError as exc:
        pytest.fail(f"the SSH lab could not be built: {exc}", pytrace=False)
    yield lab
    lab.close()


@pytest.fixture
def lab(lab_session):
    yield lab_session
    lab_session.reset()


@pytest.fixture(scope="session")
def containerd_lab():
    try:
        lab = Lab(hosts=1, containerd_engines=["lab1"])
    except LabError as exc:
        pytest.fail(f"the SSH lab with a containerd-store engine could not be built: {exc}", pytrace=False)
    yield lab
    lab.close()
