"""`up` on an SSH host sends its plan's first engine round ahead, behind the engine's /version on
the one connection through the forward (observe.engine_round_ahead, SSHHost.ask_ahead), and the
plan takes those answers instead of asking them again: one round trip for both. Against a lab
host's real sshd and engine: a fresh host and an environment already up (whose container's
noted ID is in the round), each planned as without it. The connection-level cases (another
round asked, another API version): tests/integration/test_round_sent_ahead.py."""

from __future__ import annotations

import docker
import pytest

from envctl import engine_socket
from testimages import save_image

HOST = "lab2"
BODY = """\
device: {{kind: cpu}}
image:
  ref: {ref}
  tarball: {{source: "{tarball}"}}
setup:
  - name: mark
    run: "true"
"""


@pytest.fixture
def opened(world, lab, tmp_path, monkeypatch):
    """(manifest, open): `open()` gives (host, loaded) as `up` has them before it plans."""
    from envctl.cli_remote import RemoteOptions, single_target
    from envctl.manifest.loader import load

    ref = f"envctl-it/round-ahead:{world.name}"
    tarball = tmp_path / "image.tar"
    save_image(docker.from_env(), {"etc/round-ahead": b"1\n"}, tarball, ref)
    manifest = world.write(BODY.format(ref=ref, tarball=tarball))
    lab.docker(HOST, "rmi", "-f", ref)
    world.cleanups.append(lambda: lab.docker(HOST, "rmi", "-f", ref))
    for key, value in world.environ().items():
        monkeypatch.setenv(key, value)

    def open_host():
        world.close_connections()  # a new master: /version is asked again on it
        return single_target(RemoteOptions((HOST,), None, None, None)), load(str(manifest))

    return manifest, ref, open_host


def _plan(host, loaded, monkeypatch):
    """(plan, the paths of each batch of requests a Pipelined sent) of a plan as `up` makes it,
    its first round sent ahead."""
    from envctl.observe import engine_round_ahead
    from envctl.plan import Options
    from envctl.planning import plan_on

    sent = []
    original = engine_socket.Pipelined.send

    def send(self, targets):
        sent.append([t[0] for t in targets])
        return original(self, targets)

    with monkeypatch.context() as patched:
        patched.setattr(engine_socket.Pipelined, "send", send)
        engine_round_ahead(host, loaded)
        the_plan = plan_on(host, loaded, Options(), host.engine())
    return the_plan, sent


def test_a_fresh_hosts_plan_takes_the_round_sent_ahead(opened, monkeypatch):
    _, ref, open_host = opened
    host, loaded = open_host()
    the_plan, sent = _plan(host, loaded, monkeypatch)
    assert (the_plan.image.action, the_plan.container_action.action) == ("load", "create")
    # /version and the round went out together, or the round right behind it while /version's
    # answer was on its way: either way before any answer was waited for.
    requests = [path for batch in sent for path in batch]
    assert requests[0] == "/version"
    assert f"/images/{ref}/json" in requests  # without an API version: the engine's own
    assert not [p for p in requests if p.startswith("/v1.") and f"/images/{ref}/json" in p]  # never asked again


def test_the_plan_of_an_environment_up_takes_its_containers_reads_sent_ahead(world, opened, monkeypatch):
    manifest, ref, open_host = opened
    done = world.run("up", str(manifest), "--host", HOST)
    assert done.returncode == 0, done.stderr
    host, loaded = open_host()
    container_id = host.container_hint(loaded.manifest.container_name)
    assert container_id
    the_plan, sent = _plan(host, loaded, monkeypatch)
    assert (the_plan.image.action, the_plan.container_action.action) == ("present", "unchanged")
    assert [s.action for s in the_plan.setup] == ["skip"] and the_plan.world.markers
    requests = [path for batch in sent for path in batch]
    assert f"/containers/{container_id}/json" in requests
    assert not [p for p in requests if p.startswith("/v1.") and (f"/images/{ref}/json" in p or container_id in p)]
