"""Another `up` loads the image between this `up`'s look-up and its own load, and this load
then fails: the containerd image store refuses the second of two loads of one image at once
("AlreadyExists: image ... already exists", seen in CI with two `up`s of one environment). That
is the world changed since the plan (exit 5, `envctl plan` again), not a corrupt tarball.

The race is narrow, so it is made here on the engine under test, with the steps of `up` run in
this process: the plan made while the image is absent; the image loaded by another client; the
image step given the look-up that `up` made before (image absent), its tarball cut short since
the plan, so that its load fails as the losing load does."""

from __future__ import annotations

import shutil

import pytest

from envctl.errors import WorldChanged
from envctl.images import ImageError
from support import IMAGE

pytestmark = pytest.mark.both_engines


@pytest.fixture
def in_process(make_env, monkeypatch, tarballs, tmp_path):
    env = make_env("cpu")

    def prepared():
        from envctl.hosts.local import LocalHost
        from envctl.manifest.loader import load
        from envctl.plan import Options
        from envctl.planning import plan_on

        for key, value in env.environ().items():
            monkeypatch.setenv(key, value)
        tarball = tmp_path / "image.tar"
        shutil.copyfile(tarballs.plain, tarball)
        env.write(f"device: {{kind: cpu}}\nimage: {{ref: {IMAGE}, tarball: {{source: {tarball}}}}}\n")
        host = LocalHost(str(env.root))
        loaded = load(str(env.manifest))
        plan = plan_on(host, loaded, Options(), host.engine())
        assert plan.image.action == "load", plan.image
        shutil.copyfile(tarballs.corrupt, tarball)
        return host, loaded, plan

    return prepared


def _image_step(host, loaded, plan):
    from envctl import image_actions
    from envctl.artifact_steps import local_cache

    return image_actions.ensure(host, loaded, plan, local_cache(host), echo=lambda line: None, looked_up=lambda: None)


def test_a_load_failing_after_another_loaded_the_image_says_the_world_changed(in_process, tarballs, no_image, engine):
    host, loaded, plan = in_process()
    engine.images.load(tarballs.plain.read_bytes())  # the other `up`
    with pytest.raises(WorldChanged) as raised:
        _image_step(host, loaded, plan)
    assert f"image {IMAGE} changed since the plan was made: it was absent, it is {tarballs.image_id}" in raised.value.message
    assert isinstance(raised.value.__cause__, ImageError)  # what the load said stays in the chain


def test_a_load_failing_with_nothing_changed_is_the_load_error(in_process, no_image):
    host, loaded, plan = in_process()
    with pytest.raises(ImageError) as raised:
        _image_step(host, loaded, plan)
    assert "not a readable image tarball" in raised.value.message
