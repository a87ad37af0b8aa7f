"""Remote-host tests: the SSH lab's fixtures (tests/sshlab_fixtures.py) for every test here."""

from sshlab_fixtures import lab, lab_session  # noqa: F401
