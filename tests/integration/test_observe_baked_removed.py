"""A baked image removed between the engine's list of them and its inspection (another
`envctl down --images` or `docker rmi` meanwhile) is no baked image for the plan, whether the
engine is read one request after another (docker-py, a local engine) or in rounds (an SSH
forward: envctl/observe_engine.py _Rounds, here on the local socket, which it reaches as it
does a forward). Before, the rounds took the list's summary of the gone image (its tags, its
labels) and the plan started from an image that was no more; docker-py's images.list raised
ImageNotFound for it. The removal happens in a response hook of the docker-py client (the
rounds call it as they read each answer, docker-py once a request answered)."""

from __future__ import annotations

import docker
import pytest

from envctl.containers import LABEL_BAKE_KEY, LABEL_BAKED_FOR
from envctl.observe_engine import view
from testimages import _rootfs_tar

pytestmark = pytest.mark.both_engines

MANIFEST = "envctl-it-baked-race"
KEPT, GONE = "envctl-it/baked-race:kept", "envctl-it/baked-race:gone"


def _baked(engine, ref: str, key: str) -> str:
    repository, tag = ref.rsplit(":", 1)
    engine.api.import_image_from_data(_rootfs_tar({"etc/which": ref.encode()}), repository=repository, tag=tag,
                                      changes=[f"LABEL {LABEL_BAKED_FOR}={MANIFEST}", f"LABEL {LABEL_BAKE_KEY}={key}"])
    return engine.images.get(ref).id


@pytest.fixture
def baked(engine):
    ids = {KEPT: _baked(engine, KEPT, "kept-key"), GONE: _baked(engine, GONE, "gone-key")}
    yield ids
    for ref in (KEPT, GONE):
        try:
            engine.images.remove(ref, force=True)
        except docker.errors.ImageNotFound:
            pass


@pytest.mark.parametrize("together", [False, True], ids=["one-at-a-time", "rounds"])
def test_a_baked_image_removed_before_its_inspection_is_not_taken(engine, engine_under_test, baked, together):
    removed = []

    def remove_gone(response, *args, **kwargs):
        path = response.request.path_url
        # Once the list answered, before GONE's inspection is sent. Rounds: the first round's last
        # answer (the container list) is about to be read, the list's was read (an engine answers
        # in order), the second round is not sent. docker-py: the list's response.
        due = path.split("?")[0].endswith("/containers/json" if together else "/images/json")
        if due and not removed:
            removed.append(path)
            docker.DockerClient(base_url=engine_under_test.kind.docker_host).images.remove(GONE, force=True)

    engine.api.hooks["response"].append(remove_gone)
    try:
        seen = view(engine, KEPT, (), None, MANIFEST, "envctl-it-baked-race-none", None, together=together)
    finally:
        engine.api.hooks["response"].remove(remove_gone)
    assert removed  # the image went between the two requests
    assert seen.baked == {"kept-key": KEPT}
    assert seen.baked_ids == {KEPT: baked[KEPT]}
