"""Remote-host tests: the SSH lab's fixtures (tests/sshlab_fixtures.py) for every test here, and
`world`: envctl run as a user runs it against the lab (tests/remote/world.py)."""

import re
import shutil

import cpu_images
import pytest
from sshlab_fixtures import containerd_lab, lab, lab_session  # noqa: F401
from world import PREFIX, World


@pytest.fixture(scope="session", autouse=True)
def saved_images(tmp_path_factory):
    """The session's `docker save` tarballs (tests/cpu_images.py saved_tarball) under pytest's
    base temporary directory: removed at the end, or with the old runs' directories by pytest
    when a run was killed."""
    cpu_images.saved_dir = tmp_path_factory.mktemp("saved-images")
    yield cpu_images.saved_dir
    shutil.rmtree(cpu_images.saved_dir, ignore_errors=True)


@pytest.fixture
def world(lab, tmp_path, request):  # noqa: F811 (the lab fixture)
    name = PREFIX + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:30].strip("-")
    made = World(lab, tmp_path, name)
    (tmp_path / "home").mkdir()
    made.write_inventory(**{h: {} for h in lab.names})
    yield made
    made.clean()
