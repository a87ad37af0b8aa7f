"""A container the plan found absent is created without listing the engine's containers first
(envctl/lifecycle.py execute: a round trip less to an SSH host); a container of that name made
after the plan (by another `up`, or by hand) is still never created over, removed or taken:
the engine refuses the name (409) and `up` says what has it: another `up`'s container (the
world changed), or one envctl did not make (rename or remove it)."""

from __future__ import annotations

import uuid

import pytest

from envctl.containers import ContainerSpec
from envctl.errors import WorldChanged
from envctl.lifecycle import execute
from envctl.plan import World
from testimages import _rootfs_tar, remove_images


@pytest.fixture
def image(engine):
    ref = f"envctl-it/made-meanwhile:{uuid.uuid4().hex[:8]}"
    engine.api.import_image_from_data(_rootfs_tar(), repository=ref.split(":")[0], tag=ref.split(":")[1])
    yield ref
    remove_images(engine, [ref])


@pytest.mark.parametrize("made_by", ["envctl", "hand"])
def test_a_container_made_after_the_plan_is_left_alone_and_named(engine, image, tmp_path, made_by):
    from envctl.engine import Engine
    from envctl.lifecycle import ContainerError

    name = f"it-made-meanwhile-{uuid.uuid4().hex[:8]}"
    spec = ContainerSpec(name=name, image=image, manifest="it-made-meanwhile", variant=None, cards=())
    image_id = engine.images.get(image).id
    # Made after the plan saw no container: by an `up` (envctl's labels), or by hand (none: the
    # plan, which lists envctl's containers only, would not have seen it before either).
    other = engine.containers.create(**spec.api_kwargs()) if made_by == "envctl" else \
        engine.containers.create(image, ["sleep", "60"], name=name)
    try:
        with pytest.raises((WorldChanged, ContainerError)) as raised:
            # Through envctl's engine wrapper, as `up` asks (its errors are docker-py's and envctl's at once).
            execute(Engine(engine, "the engine under test"), spec, "create", World(True, image_id), image_id,
                    str(tmp_path / "manifest.yaml"), tmp_path)
        if made_by == "envctl":
            assert isinstance(raised.value, WorldChanged)
            assert raised.value.message.startswith(f"container {name} changed since the plan was made: it was absent, "
                                                   "and another has that name now ("), raised.value.message
        else:
            assert isinstance(raised.value, ContainerError)
            assert raised.value.message.startswith(f"a container named {name} that envctl did not make is on the "
                                                   "engine ("), raised.value.message
            assert f"docker rename {name}" in raised.value.hint
        assert [c.id for c in engine.containers.list(all=True, filters={"name": name})] == [other.id]
    finally:
        other.remove(force=True)


def test_a_container_the_plan_found_absent_is_created(engine, image, tmp_path):
    name = f"it-made-meanwhile-{uuid.uuid4().hex[:8]}"
    spec = ContainerSpec(name=name, image=image, manifest="it-made-meanwhile", variant=None, cards=())
    image_id = engine.images.get(image).id
    try:
        outcome = execute(engine, spec, "create", World(True, image_id), image_id, str(tmp_path / "manifest.yaml"),
                          tmp_path)
        assert outcome.action == "created"
        assert [c.id for c in engine.containers.list(all=True, filters={"name": name})] == [outcome.container_id]
    finally:
        for container in engine.containers.list(all=True, filters={"name": name}):
            container.remove(force=True)


def test_a_name_freed_again_before_its_holder_is_read_is_not_blamed_on_another_container(engine, image, tmp_path,
                                                                                         monkeypatch):
    """The 409's holder is read by name; removed in between, the engine answers that name with a
    container whose ID begins with it (its fallback for a free name): not the holder, so not
    said to be one envctl did not make. Here the engine's answer for the name is another real
    container's inspection, as that fallback gives it."""
    name = f"it-made-meanwhile-{uuid.uuid4().hex[:8]}"
    spec = ContainerSpec(name=name, image=image, manifest="it-made-meanwhile", variant=None, cards=())
    image_id = engine.images.get(image).id
    holder = engine.containers.create(image, ["sleep", "60"], name=name)
    unrelated = engine.containers.create(image, ["sleep", "60"], name=f"it-unrelated-{uuid.uuid4().hex[:8]}")
    original = engine.api.inspect_container
    monkeypatch.setattr(engine.api, "inspect_container",
                        lambda ref: original(unrelated.id) if ref == name else original(ref))
    try:
        with pytest.raises(WorldChanged, match=f"container {name} changed since the plan was made"):
            execute(engine, spec, "create", World(True, image_id), image_id, str(tmp_path / "manifest.yaml"), tmp_path)
    finally:
        holder.remove(force=True)
        unrelated.remove(force=True)


def test_an_image_removed_after_the_image_step_is_said_as_a_changed_world(engine, image, tmp_path):
    """Another `up` loading the same ref from another tarball (on the containerd store it can
    take the ref from the image this `up` loaded), or a `docker rmi`, between the image step and
    the create: the engine answers 404 (no such image); said as the world having changed since
    the plan (exit 5), not as the engine refusing the container's settings (exit 8)."""
    from envctl.engine import Engine

    name = f"it-made-meanwhile-{uuid.uuid4().hex[:8]}"
    spec = ContainerSpec(name=name, image=image, manifest="it-made-meanwhile", variant=None, cards=())
    image_id = engine.images.get(image).id
    remove_images(engine, [image])
    with pytest.raises(WorldChanged) as raised:
        execute(Engine(engine, "the engine under test"), spec, "create", World(True, image_id), image_id,
                str(tmp_path / "manifest.yaml"), tmp_path)
    assert raised.value.message.startswith(f"image {image} changed since the plan was made: the engine has no such "
                                           "image now"), raised.value.message
    assert raised.value.exit_code == 5
    assert not engine.containers.list(all=True, filters={"name": name})
