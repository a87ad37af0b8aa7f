"""`up` on a real engine: image loading, devices inside the container, driver checks,
idempotency, recreation, concurrency."""

import io
import json

import docker
import pytest

from support import IMAGE

pytestmark = pytest.mark.both_engines  # images and the lifecycle on the classic and the containerd image store

MLU = """\
device: {{kind: mlu, cards: 2, driver: ">=5.10.22"}}
image:
  ref: {image}
  tarball: {{source: {tarball}}}
container:
  ipc: host
  shm_size: 256m
  env: {{CNCL_MLULINK_DISABLE: "1", HF_TOKEN: "${{HF_TOKEN:-}}"}}
  mounts: ["{data}:/data/models:ro"]
  workdir: /workspace
entrypoints:
  show:
    run: env | sort
"""


def mlu_manifest(env, tarball, **fmt):
    data = env.base / "models"
    data.mkdir(exist_ok=True)
    return env.write(MLU.format(image=IMAGE, tarball=tarball, data=data, **fmt))


def test_up_loads_a_plain_tarball_and_passes_exactly_the_devices(make_env, tarballs, no_image, engine):
    env = make_env("mlu", cards=4, commu=True)
    mlu_manifest(env, tarballs.plain)
    done = env.run("up", str(env.manifest), "--cards", "1,2", env=env.environ(HF_TOKEN="hf_secret_value"))
    assert done.returncode == 0, done.stderr
    assert f"image      {IMAGE}: loaded" in done.stderr
    assert "hf_secret_value" not in done.stdout + done.stderr
    assert engine.images.get(IMAGE).id == tarballs.image_id

    code, listing = env.inside("ls /dev | grep -E 'cambricon|commu' | sort")
    assert listing.split() == ["cambricon_ctl", "cambricon_dev1", "cambricon_dev2", "cambricon_ipcm1", "cambricon_ipcm2",
                               "commu1", "commu2"]
    code, kinds = env.inside("for d in /dev/cambricon_dev1 /dev/cambricon_ctl; do test -c $d && echo char; done")
    assert kinds.split() == ["char", "char"]
    code, variables = env.inside("echo $MLU_VISIBLE_DEVICES $CNCL_MLULINK_DISABLE $HF_TOKEN")
    assert variables.split() == ["0,1", "1", "hf_secret_value"]
    # Read-only where it should be: the driver tool and the data mount.
    assert env.inside("echo x > /data/models/new")[0] != 0
    assert env.inside("echo x >> /usr/bin/cnmon")[0] != 0
    assert env.inside("/usr/bin/cnmon | grep -c CNMON")[1].strip() == "1"
    attrs = env.get().attrs["HostConfig"]
    assert attrs["Privileged"] is False and attrs["IpcMode"] == "host" and attrs["ShmSize"] == 256 * 1024 * 1024
    assert env.get().labels["io.envctl.cards"] == "1,2"


def test_up_loads_a_gzipped_tarball(make_env, tarballs, no_image, engine):
    env = make_env("mlu", cards=2)
    mlu_manifest(env, tarballs.gz)
    done = env.run("up", str(env.manifest))
    assert done.returncode == 0, done.stderr
    assert engine.images.get(IMAGE).id == tarballs.image_id


def test_second_up_changes_nothing_and_keeps_the_container(make_env, tarballs, no_image):
    env = make_env("mlu", cards=2)
    mlu_manifest(env, tarballs.plain)
    assert env.run("up", str(env.manifest)).returncode == 0
    first = env.get().id
    again = env.run("up", str(env.manifest))
    assert again.returncode == 0, again.stderr
    assert f"image      {IMAGE}: present" in again.stderr
    assert f"container  {env.container}: unchanged" in again.stderr
    assert env.get().id == first


def test_a_stopped_environment_is_started(make_env, tarballs, no_image):
    env = make_env("mlu", cards=2)
    mlu_manifest(env, tarballs.plain)
    assert env.run("up", str(env.manifest)).returncode == 0
    first = env.get().id
    env.get().stop(timeout=1)
    again = env.run("up", str(env.manifest))
    assert f"container  {env.container}: started" in again.stderr
    assert env.get().id == first and env.get().status == "running"


def test_a_changed_configuration_recreates_and_says_what_changed(make_env, tarballs, no_image):
    env = make_env("mlu", cards=2)
    mlu_manifest(env, tarballs.plain)
    assert env.run("up", str(env.manifest)).returncode == 0
    first = env.get().id
    env.manifest.write_text(env.manifest.read_text().replace('CNCL_MLULINK_DISABLE: "1"', 'CNCL_MLULINK_DISABLE: "0"')
                            .replace("shm_size: 256m", "shm_size: 512m"))
    again = env.run("up", str(env.manifest))
    assert again.returncode == 0, again.stderr
    assert f"container  {env.container}: recreated: env CNCL_MLULINK_DISABLE, shm size changed" in again.stderr
    assert env.get().id != first
    assert env.inside("echo $CNCL_MLULINK_DISABLE")[1].strip() == "0"


def test_a_moved_tag_is_loaded_back_and_reported(make_env, tarballs, engine):
    # Another image already holds the manifest's tag (as after a `docker load` of a newer SDK).
    engine.images.load(tarballs.other.read_bytes())
    assert engine.images.get(IMAGE).id == tarballs.other_id
    env = make_env("mlu", cards=2)
    mlu_manifest(env, tarballs.plain)
    done = env.run("up", str(env.manifest))
    assert done.returncode == 0, done.stderr
    assert f"{IMAGE} pointed at {tarballs.other_id}; now at {tarballs.image_id}" in done.stderr
    assert engine.images.get(IMAGE).id == tarballs.image_id
    assert engine.images.get(tarballs.other_id).id == tarballs.other_id  # kept, untagged


def test_an_image_present_under_its_id_is_tagged_not_loaded(make_env, tarballs, engine):
    engine.images.load(tarballs.other.read_bytes())
    engine.images.load(tarballs.plain.read_bytes())  # IMAGE → image_id ...
    engine.images.get(tarballs.other_id).tag(IMAGE)  # ... then re-pointed at the other one
    env = make_env("mlu", cards=2)
    mlu_manifest(env, tarballs.plain)
    done = env.run("up", str(env.manifest))
    assert done.returncode == 0, done.stderr
    assert f"image      {IMAGE}: tagged" in done.stderr
    assert engine.images.get(IMAGE).id == tarballs.image_id


def test_a_corrupt_tarball_is_refused_and_nothing_is_tagged(make_env, tarballs, no_image, engine):
    env = make_env("mlu", cards=2)
    mlu_manifest(env, tarballs.corrupt)
    done = env.run("up", str(env.manifest))
    assert done.returncode == 5
    assert done.stderr.startswith(f"error: {tarballs.corrupt} is not a readable image tarball (")
    assert "nothing was loaded" in done.stderr and "hint:  download it again" in done.stderr
    assert "Traceback" not in done.stderr
    with pytest.raises(docker.errors.ImageNotFound):
        engine.images.get(IMAGE)
    assert env.get() is None


def test_a_wrong_tarball_checksum_loads_nothing(make_env, tarballs, no_image, engine):
    env = make_env("mlu", cards=2)
    mlu_manifest(env, tarballs.plain)
    env.manifest.write_text(env.manifest.read_text().replace(
        f"tarball: {{source: {tarballs.plain}}}", f"tarball: {{source: {tarballs.plain}, sha256: {'ab' * 32}}}"))
    done = env.run("up", str(env.manifest))
    assert done.returncode == 5
    assert f"the manifest expects {'ab' * 32}; nothing was loaded" in done.stderr
    with pytest.raises(docker.errors.ImageNotFound):
        engine.images.get(IMAGE)


def test_an_old_driver_stops_up_with_required_found_and_file(make_env, tarballs, no_image):
    env = make_env("mlu", cards=2, driver="5.10.13")
    mlu_manifest(env, tarballs.plain)
    done = env.run("up", str(env.manifest))
    assert done.returncode == 5
    assert (f"host driver v5.10.13 does not satisfy >=5.10.22 required by {env.name} "
            f"(read from {env.root}/proc/driver/cambricon/mlus/0000:39:00.0/information)") in done.stderr
    assert env.get() is None
    forced = env.run("up", str(env.manifest), "--skip-driver-check")
    assert forced.returncode == 0, forced.stderr


def test_a_card_that_does_not_exist_stops_up_with_the_cards_that_do(make_env, tarballs, no_image):
    env = make_env("mlu", cards=2)
    mlu_manifest(env, tarballs.plain)
    done = env.run("up", str(env.manifest), "--cards", "0,7")
    assert done.returncode == 5
    assert f"Cambricon MLU card 7 does not exist under {env.root}; cards present: 0, 1" in done.stderr
    assert env.get() is None


def test_no_engine_reachable_is_explained(make_env, tarballs, tmp_path):
    env = make_env("mlu", cards=2)
    mlu_manifest(env, tarballs.plain)
    done = env.run("up", str(env.manifest), env=env.environ(DOCKER_HOST=f"unix://{tmp_path}/no-such.sock"))
    assert done.returncode == 5
    assert done.stderr.startswith(f"error: the Docker engine at DOCKER_HOST=unix://{tmp_path}/no-such.sock does not answer")
    assert "hint:  check that the engine runs there" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_image_without_tarball_or_build_is_not_pulled(make_env, no_image):
    env = make_env("cpu")
    env.write(f"device: {{kind: cpu}}\nimage: {{ref: {IMAGE}}}\n")
    done = env.run("up", str(env.manifest))
    assert done.returncode == 5
    # A blocker of the plan: `up` stops before anything is fetched or created.
    assert f"image {IMAGE}: not on the engine; the manifest gives no tarball or build and does not pull it (image.pull)" in done.stderr, done.stderr


def test_two_concurrent_ups_end_with_one_container_and_neither_improvises(make_env, tarballs, no_image, engine):
    """Each `up` applies its own plan. One that finds the world changed by the other (the image
    loaded, the container created meanwhile) stops and says what changed (exit 5) instead of
    doing what its plan did not show; whichever order they run in, one container is left."""
    env = make_env("mlu", cards=2)
    mlu_manifest(env, tarballs.plain)
    first, second = env.popen("up", str(env.manifest)), env.popen("up", str(env.manifest))
    results = [p.communicate(timeout=120) + (p.returncode,) for p in (first, second)]
    codes = sorted(r[2] for r in results)
    assert codes in ([0, 0], [0, 5]), results
    for out, err, code in results:
        if code == 5:
            assert "changed since the plan was made" in err, err
    named = [c for c in engine.containers.list(all=True) if c.name == env.container]
    assert len(named) == 1 and named[0].status == "running"


def test_npu_environment_gets_davinci_nodes_driver_mounts_and_visibility(make_env, tarballs, no_image):
    env = make_env("npu", cards=8)
    env.write(f"""\
        device: {{kind: npu, cards: [2, 3], driver: ">=23.0.rc1"}}
        image: {{ref: {IMAGE}, tarball: {{source: {tarballs.plain}}}}}
        """)
    done = env.run("up", str(env.manifest))
    assert done.returncode == 0, done.stderr
    listing = env.inside("ls /dev | grep -E 'davinci|devmm|hisi' | sort")[1].split()
    assert listing == ["davinci2", "davinci3", "davinci_manager", "devmm_svm", "hisi_hdc"]
    assert env.inside("echo $ASCEND_RT_VISIBLE_DEVICES")[1].strip() == "0,1"
    assert env.inside("grep -c package_version /usr/local/Ascend/driver/version.info")[1].strip() == "1"
    for path in ("/usr/local/Ascend/driver/version.info", "/usr/local/bin/npu-smi", "/etc/ascend_install.info"):
        assert env.inside(f"echo x >> {path}")[0] != 0, path
    assert env.inside("test -d /usr/local/Ascend/driver/lib64 && test -d /usr/local/dcmi")[0] == 0


def test_up_dry_run_prints_the_plan_and_changes_nothing(make_env, tarballs, no_image, engine):
    env = make_env("mlu", cards=2)
    mlu_manifest(env, tarballs.plain)
    done = env.run("up", str(env.manifest), "--dry-run")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"plan: {env.name} on local")
    assert env.get() is None
    with pytest.raises(docker.errors.ImageNotFound):
        engine.images.get(IMAGE)


def test_status_lists_the_environment(make_env, tarballs, no_image):
    env = make_env("mlu", cards=2)
    mlu_manifest(env, tarballs.plain)
    assert env.run("up", str(env.manifest)).returncode == 0
    rows = json.loads(env.run("status", "--json").stdout)
    mine = [r for r in rows if r["name"] == env.container]
    assert mine and mine[0]["status"] == "running" and mine[0]["cards"] == [0, 1] and mine[0]["image"] == IMAGE


def test_a_tarball_the_engine_rejects_is_reported_and_nothing_is_tagged(make_env, no_image, engine, tmp_path):
    # A complete tarball whose manifest and config read fine, but whose layer is garbage. The
    # image is new to the engine (a unique file in it), so the engine must read that layer.
    import tarfile
    import uuid

    from testimages import save_image

    original, broken = tmp_path / "unique.tar", tmp_path / "broken-layer.tar"
    save_image(engine, {"etc/unique": uuid.uuid4().bytes}, original)
    with tarfile.open(original) as source:  # layers are <id>/layer.tar (20.10) or blobs/sha256/<hex> (25+)
        layers = set(json.load(source.extractfile("manifest.json"))[0]["Layers"])
    with tarfile.open(original) as source, tarfile.open(broken, "w") as target:
        for member in source:
            data = source.extractfile(member) if member.isfile() else None
            if member.name in layers:
                garbage = b"not a layer" * 100
                member.size = len(garbage)
                target.addfile(member, io.BytesIO(garbage))
            else:
                target.addfile(member, data)
    env = make_env("mlu", cards=2)
    mlu_manifest(env, broken)
    done = env.run("up", str(env.manifest))
    assert done.returncode == 5, done.stderr
    assert done.stderr.startswith(f"error: the engine could not load {broken}: ")
    assert "hint:  the tarball may be corrupt: download it again" in done.stderr
    with pytest.raises(docker.errors.ImageNotFound):
        engine.images.get(IMAGE)


def test_loading_through_the_engine_api_when_there_is_no_local_socket(tarballs, no_image, engine):
    # The path used for engines reached over TCP: chunks streamed through docker-py.
    from envctl.images import load_tarball

    loaded = load_tarball(engine, tarballs.gz, socket_path=None)
    assert loaded == [f"Loaded image: {IMAGE}"]
    assert engine.images.get(IMAGE).id == tarballs.image_id


def test_a_pinned_image_id_that_differs_from_the_tarball_is_refused(make_env, tarballs, no_image):
    env = make_env("mlu", cards=2)
    mlu_manifest(env, tarballs.plain)
    env.manifest.write_text(env.manifest.read_text().replace(f"  ref: {IMAGE}\n", f"  ref: {IMAGE}\n  id: {tarballs.other_id}\n"))
    done = env.run("up", str(env.manifest))
    assert done.returncode == 5
    assert f"{tarballs.plain} holds image {tarballs.image_id}, the manifest pins {tarballs.other_id}; nothing was loaded" in done.stderr


def test_an_image_built_from_a_context_is_rebuilt_only_when_the_context_changes(make_env, tarballs, engine, tmp_path):
    engine.images.load(tarballs.plain.read_bytes())
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {IMAGE}\nRUN echo one > /etc/built\n")
    env = make_env("cpu")
    env.write(f"""\
        device: {{kind: cpu}}
        image: {{ref: envctl-it/built:1, build: {context}}}
        """)
    first = env.run("up", str(env.manifest))
    assert first.returncode == 0, first.stderr
    assert "image      envctl-it/built:1: built" in first.stderr
    assert env.inside("cat /etc/built")[1] == "one\n"
    again = env.run("up", str(env.manifest))
    assert "image      envctl-it/built:1: present" in again.stderr and "unchanged" in again.stderr
    (context / "Dockerfile").write_text(f"FROM {IMAGE}\nRUN echo two > /etc/built\n")
    changed = env.run("up", str(env.manifest))
    assert "image      envctl-it/built:1: built" in changed.stderr
    assert f"container  {env.container}: recreated: image" in changed.stderr
    assert env.inside("cat /etc/built")[1] == "two\n"


def test_ulimits_are_applied(make_env, tarballs, no_image):
    # (A privileged container cannot start in this sandbox; that it is asked for is checked on
    # the plan's create arguments in the unit tests.)
    env = make_env("cpu")
    env.write(f"""\
        device: {{kind: cpu}}
        image: {{ref: {IMAGE}, tarball: {{source: {tarballs.plain}}}}}
        container:
          ulimits: {{nofile: "1024:2048"}}
        """)
    done = env.run("up", str(env.manifest))
    assert done.returncode == 0, done.stderr
    assert env.inside("ulimit -n; ulimit -Hn")[1].split() == ["1024", "2048"]
