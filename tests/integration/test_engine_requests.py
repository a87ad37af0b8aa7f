"""The requests envctl sends the engine to connect, to observe an environment and to choose one
(issue 14: `up` of an environment already up, `plan`, `exec` and `status` ask the engine in few
requests), on both image stores. Each request docker-py sends goes through requests' HTTPAdapter
(its unix-socket adapter derives from it), where the tests count them."""

import json
import os
import shutil
import socket
import stat
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from support import IMAGE, count_docker_py_requests

from envctl import environments
from envctl.engine import Engine, connect
from envctl.errors import EnvctlError
from envctl.markers import MARKER_DIR
from envctl.observe_engine import find_container, read_setup_state

pytestmark = pytest.mark.both_engines

NO_SETUP = """\
device: {{kind: cpu}}
image: {{ref: {image}, tarball: {{source: {tarball}}}}}
"""
SETUP = NO_SETUP + """\
setup:
  - name: first
    run: echo first > /tmp/first
  - name: second
    run: echo second > /tmp/second
"""


@pytest.fixture
def sent(monkeypatch) -> list[str]:
    """"METHOD /path" of each request sent to an engine from now on (the API version prefix and
    the query left out)."""
    return count_docker_py_requests(monkeypatch)


def brought_up(env, tarballs, body: str):
    env.write(body.format(image=IMAGE, tarball=tarballs.plain))
    done = env.run("up", str(env.manifest))
    assert done.returncode == 0, done.stderr
    return env.get()


def test_connecting_is_one_request(make_env, sent):
    """docker-py asks the API version first; that answer proves the engine is there."""
    env = make_env("cpu")
    client = connect(env.environ())
    assert sent == ["GET /version"]
    assert client.version()["ApiVersion"]


class CountingRelay:
    """A unix socket in front of the engine's that counts the connections made to it: through
    an SSH forward (envctl/hosts/ssh.py) each one is a channel the server opens first, a round
    trip of its own."""

    def __init__(self, path, engine_socket: str):
        self.path, self.engine_socket, self.accepted = str(path), engine_socket, 0
        self.listener = socket.socket(socket.AF_UNIX)
        self.listener.bind(self.path)
        self.listener.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed
                return
            self.accepted += 1
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(self.engine_socket)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def test_every_request_of_a_client_goes_through_one_connection(engine_under_test, tmp_path, caplog):
    """docker-py opens a connection for each URL it did not ask before (its pools are keyed by
    the whole URL); envctl's clients keep one for all (envctl/engine_pool.py), as the docker
    CLI does, and a second only for requests made at once."""
    relay = CountingRelay(tmp_path / "engine.sock", engine_under_test.docker_host.removeprefix("unix://"))
    client = connect({"DOCKER_HOST": f"unix://{relay.path}"})
    # One request each (never a list and then an inspection of each item, which another test
    # removing a container meanwhile would fail), every one to a URL not asked before.
    client.ping()
    client.api.containers(all=True)
    client.api.images()
    client.info()
    with pytest.raises(EnvctlError):
        client.containers.get("envctl-test-no-such-container")
    with pytest.raises(EnvctlError):
        client.images.get("envctl-test/no-such-image:1")
    assert relay.accepted == 1
    with ThreadPoolExecutor(3) as pool:
        for _ in range(6):
            list(pool.map(lambda _: client.api.containers(all=True), range(3)))
    assert 1 < relay.accepted <= 3
    assert not [r for r in caplog.records if "pool" in r.getMessage().lower()]


def test_the_markers_of_a_container_where_no_step_ran_are_two_requests_and_no_exec(make_env, tarballs, sent):
    """No state directory: the archive endpoint's 404, and the stat of the root that tells it
    from a mount that failed; nothing is run in the container."""
    env = make_env("cpu")
    container = brought_up(env, tarballs, NO_SETUP)
    execs_before = container.attrs.get("ExecIDs")
    sent.clear()
    assert read_setup_state(Engine(env.engine), container.id) == (frozenset(), {})
    assert sent == [f"GET /containers/{container.id}/archive", f"HEAD /containers/{container.id}/archive"]
    container.reload()
    assert container.attrs.get("ExecIDs") == execs_before


def test_the_markers_are_still_read_when_a_mounts_source_left_the_host(make_env, tarballs, tmp_path):
    """An artifact's cache directory removed under a running container: the engine cannot mount
    it, and answers the archive (and the stat of the root) with 404 "Could not find the file",
    as for an absent path. The markers are then listed inside, and are the ones there."""
    env = make_env("cpu")
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "w.txt").write_text("v1\n")
    env.write(SETUP.format(image=IMAGE, tarball=tarballs.plain) + f"artifacts:\n  weights: {{source: {weights}, target: /models}}\n")
    assert env.run("up", str(env.manifest)).returncode == 0
    container = env.get()
    code, listed = env.inside(f"ls -1A {MARKER_DIR}")
    assert code == 0 and len(listed.split()) == 2
    placed = json.loads(env.run("plan", "--json", str(env.manifest)).stdout)["artifacts"][0]["cache_path"]
    for root, _, _ in os.walk(placed):
        os.chmod(root, stat.S_IRWXU)  # the cache's entries are read-only
    shutil.rmtree(placed)
    markers, _ = read_setup_state(Engine(env.engine), container.id)
    assert markers == frozenset(listed.split())


def test_the_markers_of_steps_that_ran_are_one_request_and_what_is_in_the_container(make_env, tarballs, sent):
    env = make_env("cpu")
    container = brought_up(env, tarballs, SETUP)
    code, listed = env.inside(f"ls -1A {MARKER_DIR}")
    assert code == 0 and len(listed.split()) == 2
    sent.clear()
    markers, claims = read_setup_state(Engine(env.engine), container.id)
    assert sent == [f"GET /containers/{container.id}/archive"]
    assert markers == frozenset(listed.split()) and claims == {}


@pytest.mark.parametrize("stopped", [False, True], ids=["running", "stopped"])
def test_the_environments_container_is_found_in_one_request_with_what_an_inspection_says(make_env, tarballs, sent,
                                                                                         stopped):
    env = make_env("cpu")
    container = brought_up(env, tarballs, NO_SETUP)
    if stopped:
        container.stop(timeout=0)
    container.reload()
    sent.clear()
    found = find_container(Engine(env.engine), env.container)
    assert sent == ["GET /containers/json"]
    assert (found.name, found.id, found.status, found.labels) == (container.name, container.id, container.status,
                                                                  container.labels)
    assert found.status == ("exited" if stopped else "running")
    assert find_container(Engine(env.engine), env.container[:-1]) is None  # the list filter matches part of a name


def test_an_environment_is_chosen_in_two_requests_whatever_the_number_up(make_env, tarballs, sent):
    """The list's summaries name and describe every environment; only the chosen one is inspected
    (other environments, of other tests and of users, are up on the same engine)."""
    first, second = make_env("cpu"), make_env("cpu")
    brought_up(first, tarballs, NO_SETUP)
    container = brought_up(second, tarballs, NO_SETUP)
    client = Engine(second.engine)
    sent.clear()
    chosen = environments.choose(client, second.name)
    assert sent == ["GET /containers/json", f"GET /containers/{container.id}/json"]
    described = next(e for e in environments.all_environments(client) if e.name == second.container)
    assert chosen.container.id == container.id and chosen.container.attrs["Mounts"] == container.attrs["Mounts"]
    assert (chosen.name, chosen.manifest, chosen.variant, chosen.manifest_file, chosen.cards, chosen.config_hash,
            chosen.status, chosen.vars, chosen.workspace) == \
           (described.name, described.manifest, described.variant, described.manifest_file, described.cards,
            described.config_hash, described.status, described.vars, described.workspace)
    with pytest.raises(environments.EnvctlError, match=f"no environment '{second.name}x' is up"):
        environments.choose(client, f"{second.name}x")


def test_status_inspects_each_environments_container_once(make_env, tarballs, sent):
    """docker-py's list inspects every container it lists; the work running in each is read
    from that inspection (its State and ExecIDs), not from a second one."""
    from envctl.cli_runs import _status_rows

    env = make_env("cpu")
    container = brought_up(env, tarballs, NO_SETUP)
    sent.clear()
    rows = [row for row in _status_rows(Engine(env.engine)) if row["name"] == env.container]
    assert sent.count(f"GET /containers/{container.id}/json") == 1, sent
    assert rows[0]["status"] == "running" and rows[0]["runs"] == []


def test_up_of_an_environment_already_up_inspects_its_image_twice(make_env, tarballs, sent, monkeypatch):
    """Once to plan, once to check that the ref names what the plan saw just before acting
    (another `up` may have changed it meanwhile); the image step takes that second answer,
    nothing having loaded, pulled, tagged or built in between."""
    from typer.testing import CliRunner

    from envctl.cli_app import app
    import envctl.cli  # noqa: F401  (registers the commands on app)

    env = make_env("cpu")
    brought_up(env, tarballs, NO_SETUP)
    for key in [k for k in os.environ if k.startswith("ENVCTL_")]:
        monkeypatch.delenv(key)
    for key, value in env.environ(ENVCTL_NO_QUICK="1").items():
        monkeypatch.setenv(key, value)
    sent.clear()
    done = CliRunner().invoke(app, ["up", str(env.manifest)])
    assert done.exit_code == 0, done.output
    assert f"image      {IMAGE}: present" in done.output
    assert sent.count(f"GET /images/{IMAGE}/json") == 2, sent


@pytest.mark.parametrize("body", [SETUP, NO_SETUP], ids=["steps ran", "no step ever ran"])
def test_in_rounds_the_processes_and_the_setup_state_come_with_the_containers_inspection(make_env, tarballs, sent,
                                                                                          body):
    """Through an SSH forward (here the local socket, reached as a forward is) the plan's second
    round carries the container's `top` and the setup state's archive beside its inspection:
    docker-py sends neither (before, each was a round trip of its own). What the plan sees is
    what one request after another sees. A state directory that is not there (404 in the round)
    is told from a failed mount by the stat of the root alone, as read_setup_state does."""
    from envctl.observe_engine import view

    env = make_env("cpu")
    container = brought_up(env, tarballs, body)
    one_by_one = view(Engine(env.engine), IMAGE, (), None, env.manifest.stem, env.container, None, together=False)
    sent.clear()
    rounds = view(Engine(env.engine), IMAGE, (), None, env.manifest.stem, env.container, None, together=True)
    assert not [s for s in sent if s.endswith(("/top", f"{container.id}/archive")) and s.startswith("GET")], sent
    assert sent.count(f"HEAD /containers/{container.id}/archive") == (0 if body is SETUP else 1), sent
    assert rounds.markers == one_by_one.markers and len(rounds.markers) == (2 if body is SETUP else 0)
    assert rounds.container.runs == one_by_one.container.runs
    assert (rounds.container.id, rounds.image_id) == (one_by_one.container.id, one_by_one.image_id)


def test_in_rounds_the_ids_wanted_are_looked_up_with_the_second_round_when_the_ref_names_no_image(engine, sent):
    """A fresh host: the manifest's ref names no image, so the plan looks for the IDs the image
    must have under any name (an image loaded under another tag). In rounds they go with the
    second round, not one request each after it; found or not, the plan sees what one request
    after another sees."""
    from envctl.observe_engine import view

    present = engine.images.get(IMAGE)
    for wanted in [(present.id,), ("sha256:" + "0" * 64, present.id), ("sha256:" + "1" * 64,)]:
        args = ("envctl-it/never-tagged:1", wanted, None, "envctl-it-none", "envctl-it-none", None)
        one_by_one = view(Engine(engine), *args, together=False)
        sent.clear()
        rounds = view(Engine(engine), *args, together=True)
        # (The containerd store's match of an image found reads its export: /images/ID/get.)
        assert not [s for s in sent if s.startswith("GET /images/sha256:") and s.endswith("/json")], sent
        assert (rounds.pinned_id, rounds.image_id, rounds.image_present) == \
            (one_by_one.pinned_id, one_by_one.image_id, one_by_one.image_present)
        assert rounds.pinned_id == (present.id if present.id in wanted else None)
