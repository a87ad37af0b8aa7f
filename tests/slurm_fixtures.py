"""pytest fixture for a Slurm cluster in the SSH lab (tests/sshlab_slurm.py):

- `slurm`: slurmctld on lab1, slurmd on lab1 and lab2 of the session's lab (`lab_session`),
  started for the module that uses it (about a second and a half) and stopped after it.

Import it with the lab's fixtures: `from slurm_fixtures import slurm  # noqa: F401`. A cluster
that cannot start fails every test using it with the reason; it never skips.
"""

from __future__ import annotations

import pytest

from sshlab import LabError
from sshlab_slurm import SlurmCluster


@pytest.fixture(scope="module")
def slurm(lab_session):
    try:
        cluster = SlurmCluster(lab_session, nodes=["lab1", "lab2"])
    except LabError as exc:
        pytest.fail(f"Slurm could not be started in the SSH lab: {exc}", pytrace=False)
    yield cluster
    cluster.close()
