"""On an SSH host as on this machine (tests/integration/test_plan_is_what_up_does.py): the
actions `up --host` executed (its --json report) equal the actions `plan --host` and
`up --dry-run --host` printed for the same state, for a fresh host and for nothing to do, with
the bytes pushed from this machine (`fetch: push`) and downloaded by the host itself
(`fetch: remote`). One apply body serves both kinds of host, and it checks the host's cache
again before it acts."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess

import docker
import pytest

from servers.git_http import GitHTTPServer
from servers.http_files import FileServer
from support import IMAGE
from testimages import save_image
from world import World

BODY = """\
device: {{kind: cpu}}
image:
  ref: {image}
  tarball: {{source: "{tarball}"{tarball_sha}}}
artifacts:
  weights: {{source: "{weights}", target: /models/weights.bin{weights_sha}}}
  config: {{source: "{config}", target: /models/config.json, mode: rw}}
setup:
  - name: read the config
    run: cp /models/config.json /tmp/seen.json
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A `docker save` of the test image, and two artifacts as local files."""
    directory = tmp_path_factory.mktemp("plan-is-up")
    tarball = directory / "busybox.tar"
    save_image(docker.from_env(), None, tarball)
    weights = directory / "weights.bin"
    weights.write_bytes(os.urandom(2 << 20))  # over 1 MiB: travels as a blob of its own
    config = directory / "config.json"
    config.write_text('{"hidden_size": 64}\n')
    return tarball, weights, config


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def actions(plan: dict) -> list[list[str]]:
    out = [["artifact", a["name"], a["action"]] for a in plan["artifacts"]]
    out.append(["image", plan["image"]["ref"], "present" if plan["baked"] else plan["image"]["action"]])
    out.append(["container", plan["container"]["name"], plan["container_action"]["action"]])
    return out + [["setup", s["name"], s["action"]] for s in plan["setup"]]


def planned_then_done(world: World, host: str) -> tuple[list, list]:
    """Plan (plan --host and up --dry-run --host, compared), then up --host."""
    dry = world.run("up", "--dry-run", "--json", str(world.manifest), "--host", host)
    shown = world.run("plan", "--json", str(world.manifest), "--host", host)
    assert dry.returncode == 0 and shown.returncode == 0, dry.stderr + shown.stderr
    assert dry.stdout == shown.stdout, "plan and up --dry-run printed different plans"
    plan = json.loads(dry.stdout)[host]
    done = world.run("up", "--json", str(world.manifest), "--host", host)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)[host]
    assert report["planned"] == actions(plan)
    return actions(plan), report["executed"]


def test_pushed_to_a_fresh_host_then_nothing_to_do(world, lab, files):
    tarball, weights, config = files
    world.write(BODY.format(image=IMAGE, tarball=tarball, tarball_sha="", weights=weights, weights_sha="", config=config))
    lab.docker("lab1", "rmi", "-f", IMAGE)
    planned, executed = planned_then_done(world, "lab1")
    assert planned == executed == [["artifact", "weights", "fetch+push"], ["artifact", "config", "fetch+push"],
                                   ["image", IMAGE, "load"], ["container", world.container, "create"],
                                   ["setup", "read the config", "run"]]
    remote_copy = f"{world.data_dir()}/workspaces/{world.container}/artifacts/config"
    copy = world.remote("lab1", remote_copy)
    assert copy.read_text() == config.read_text()  # the writable copy, made on the host
    planned, executed = planned_then_done(world, "lab1")
    assert planned == executed == [["artifact", "weights", "cached"], ["artifact", "config", "cached"],
                                   ["image", IMAGE, "present"], ["container", world.container, "unchanged"],
                                   ["setup", "read the config", "skip"]]
    # The writable copy removed on the host: the plan says so, and up copies it there again,
    # from the host's own cache (nothing is fetched or sent).
    lab.run_in("lab1", "rm", "-rf", remote_copy)
    planned, executed = planned_then_done(world, "lab1")
    assert planned == executed
    # The container is restarted: until then its bind mount shows the deleted copy.
    assert planned[3] == ["container", world.container, "restart"]
    assert planned[:3] + planned[4:] == [["artifact", "weights", "cached"], ["artifact", "config", "copy"],
                                         ["image", IMAGE, "present"], ["setup", "read the config", "skip"]]
    assert copy.read_text() == config.read_text()


def test_downloaded_by_a_fresh_host_then_nothing_to_do(world, lab, files, monkeypatch):
    tarball, _, config = files
    data, image_bytes = os.urandom(2 << 20), tarball.read_bytes()
    monkeypatch.setattr(FileServer, "address", lab.gateway)  # served on the lab network
    with FileServer(files={"weights.bin": data, "busybox.tar": image_bytes}) as mirror:
        world.write(BODY.format(image=IMAGE, tarball=mirror.url_for("busybox.tar"),
                                tarball_sha=f", sha256: {_sha(image_bytes)}", weights=mirror.url_for("weights.bin"),
                                weights_sha=f", sha256: {_sha(data)}", config=config))
        world.write_inventory(lab2={"fetch": "remote"})
        lab.docker("lab2", "rmi", "-f", IMAGE)
        planned, executed = planned_then_done(world, "lab2")
        assert planned == executed == [["artifact", "weights", "fetch"], ["artifact", "config", "fetch+push"],
                                       ["image", IMAGE, "download+load"], ["container", world.container, "create"],
                                       ["setup", "read the config", "run"]]
        local_blobs = world.base / "cache" / "blobs" / "sha256"
        assert not (local_blobs / _sha(data)).exists() and not (local_blobs / _sha(image_bytes)).exists()
        remote_blobs = f"{world.data_dir()}/cache/blobs/sha256"
        assert world.remote("lab2", f"{remote_blobs}/{_sha(image_bytes)}").read_bytes() == image_bytes
        planned, executed = planned_then_done(world, "lab2")
        assert planned == executed == [["artifact", "weights", "cached"], ["artifact", "config", "cached"],
                                       ["image", IMAGE, "present"], ["container", world.container, "unchanged"],
                                       ["setup", "read the config", "skip"]]


def test_apply_checks_the_host_cache_again_before_it_acts(world, lab, files, monkeypatch):
    """The plan said "cached" on the host; its cache was emptied before up acted: up stops and
    says so instead of doing what no plan showed (pushing), and touches no container."""
    from envctl import apply
    from envctl.cli_remote import RemoteOptions, single_target
    from envctl.errors import WorldChanged
    from envctl.manifest.loader import load
    from envctl.plan import Options
    from envctl.planning import plan_on

    tarball, weights, config = files
    manifest = world.write(BODY.format(image=IMAGE, tarball=tarball, tarball_sha="", weights=weights, weights_sha="",
                                       config=config))
    assert world.run("up", str(manifest), "--host", "lab3").returncode == 0
    for key, value in world.environ().items():
        monkeypatch.setenv(key, value)
    host = single_target(RemoteOptions(("lab3",), None, None, None))
    loaded = load(str(manifest))
    the_plan = plan_on(host, loaded, Options(), host.engine())
    assert [a.action for a in the_plan.artifacts] == ["cached", "cached"]
    lab.run_in("lab3", "rm", "-rf", f"{world.data_dir()}/cache/artifacts")
    said = []
    with pytest.raises(WorldChanged, match="weights, config left the cache of lab3"):
        apply.up(host, loaded, the_plan, said.append)
    assert said == [] and world.containers("lab3") == [f"{world.container} running"]
    assert not world.remote("lab3", f"{world.data_dir()}/cache/artifacts").exists()  # nothing was pushed


SECRET = "pw-n0t-for-hosts"  # the mirror's password, in the artifact's URL
TOKEN = "hf_tokenNeverOnHosts"  # HF_TOKEN in the user's environment

EVERY_KIND = """\
device: {{kind: cpu}}
image:
  ref: {image}
  tarball: {{source: "{tarball}"}}
artifacts:
  weights: {{source: "{http}", target: /models/weights.bin}}
  tool: {{source: "{git}", target: /opt/tool}}
  data: {{source: "{data}", target: /data}}
  scratch: {{source: "{data}", target: /scratch, mode: rw}}
  config: {{source: "{config}", target: /models/config.json, mode: rw}}
"""


def _git_repository(root):
    """A bare repository `tool.git` under `root` with a tag v1."""
    work = root / "work"
    work.mkdir(parents=True)
    (work / "run.sh").write_text("echo tool\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "-C", str(work)]
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-qm", "one"], ["tag", "v1"]):
        subprocess.run(git + args, check=True, capture_output=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(root / "tool.git")], check=True, capture_output=True)


def test_every_kind_of_artifact_pushed_then_nothing_to_do_then_part_of_the_host_cache_lost(world, lab, files, tmp_path,
                                                                                          monkeypatch):
    """An http file behind a password, a git repository, a local directory mounted read-only
    and copied writable (one source, so one cache entry: fetched and sent once), a local file
    copied writable: plan equals up on a fresh host, then nothing to do (nothing on the host
    touched), then with one entry of the host's cache deleted only that one is sent again.
    Neither the URL's password nor HF_TOKEN reaches the host's files or envctl's output."""
    tarball, _, config = files
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "sub" / "x.txt").write_text("x\n")
    _git_repository(tmp_path / "git")
    monkeypatch.setattr(FileServer, "address", lab.gateway)
    environ = world.environ(HF_TOKEN=TOKEN)
    plain_run = world.run
    said = []  # everything envctl printed

    def run(*args, **kw):
        done = plain_run(*args, env=environ, **kw)
        said.append(done.stdout + done.stderr)
        return done

    monkeypatch.setattr(world, "run", run)
    with FileServer(files={"w.bin": os.urandom(2 << 20)}, require_auth=("u", SECRET)) as mirror, \
            GitHTTPServer(tmp_path / "git") as git:
        world.write(EVERY_KIND.format(image=IMAGE, tarball=tarball, config=config, data=data, git=f"git+{git.url}/tool.git@v1",
                                      http=mirror.url_for("w.bin").replace("http://", f"http://u:{SECRET}@")))
        lab.docker("lab1", "rmi", "-f", IMAGE)
        planned, executed = planned_then_done(world, "lab1")
        assert planned == executed == [["artifact", "weights", "fetch+push"], ["artifact", "tool", "fetch+push"],
                                       ["artifact", "data", "fetch+push"], ["artifact", "scratch", "copy"],
                                       ["artifact", "config", "fetch+push"], ["image", IMAGE, "load"],
                                       ["container", world.container, "create"]]
        shown = lab.docker("lab1", "exec", world.container, "sh", "-c", "cat /opt/tool/run.sh /scratch/sub/x.txt /data/sub/x.txt")
        assert shown.stdout == "echo tool\nx\nx\n", shown.stderr

        root = world.remote("lab1", world.data_dir())
        before = _snapshot(root)
        planned, executed = planned_then_done(world, "lab1")
        assert planned == executed == [["artifact", name, "cached"] for name in ("weights", "tool", "data", "scratch", "config")] \
            + [["image", IMAGE, "present"], ["container", world.container, "unchanged"]]
        assert _snapshot(root) == before  # nothing sent, copied or rewritten on the host

        # The host's cache of the git repository deleted: only it is sent again (from here).
        lab.run_in("lab1", "rm", "-rf", f"{world.data_dir()}/cache/artifacts/git")
        planned, executed = planned_then_done(world, "lab1")
        assert planned == executed
        assert planned[:5] == [["artifact", "weights", "cached"], ["artifact", "tool", "push"], ["artifact", "data", "cached"],
                               ["artifact", "scratch", "cached"], ["artifact", "config", "cached"]]

    for directory in (root, world.base / "cache", world.base / "workspaces"):
        for path in (p for p in directory.rglob("*") if p.is_file() and not p.is_symlink()):
            content = path.read_bytes()
            assert SECRET.encode() not in content and TOKEN.encode() not in content, path
    assert said and not [out for out in said if SECRET in out or TOKEN in out]


def _snapshot(root) -> dict:
    """Every path under root with its inode, mtime and size (logs aside: each up writes one)."""
    return {str(p.relative_to(root)): (s.st_ino, s.st_mtime_ns, s.st_size)
            for p in root.rglob("*") if "logs" not in p.parts for s in [p.lstat()]}


DAMAGED = """\
device: {{kind: cpu}}
image: {{ref: {image}, tarball: {{source: "{tarball}"}}}}
artifacts:
  data: {{source: "{data}", target: /data}}
  weights: {{source: "{weights}", target: /models/weights.bin}}
"""


def test_a_file_deleted_or_cut_short_in_the_host_cache_is_sent_again(world, lab, files, tmp_path):
    """The host's cache damaged by hand (a file of a directory artifact deleted; a large file
    truncated, and with it its blob, a hard link of it): the plan says push for that artifact
    alone, up sends it, and the container sees the whole artifact again."""
    tarball, weights, _ = files
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "sub" / "x.txt").write_text("x\n")
    (data / "y.txt").write_text("y\n")
    world.write(DAMAGED.format(image=IMAGE, tarball=tarball, data=data, weights=weights))
    assert world.run("up", str(world.manifest), "--host", "lab2").returncode == 0
    cache = world.remote("lab2", f"{world.data_dir()}/cache/artifacts")
    [lost] = cache.rglob("data/sub/x.txt")
    [cached_weights] = [p for p in cache.rglob("weights.bin") if p.is_file()]

    lab.run_in("lab2", "rm", "-f", f"{world.data_dir()}/cache/artifacts/{lost.relative_to(cache)}")
    planned, executed = planned_then_done(world, "lab2")
    assert planned == executed
    assert planned[:2] == [["artifact", "data", "push"], ["artifact", "weights", "cached"]]
    shown = lab.docker("lab2", "exec", world.container, "cat", "/data/sub/x.txt")
    assert shown.stdout == "x\n", shown.stderr

    lab.run_in("lab2", "truncate", "-s", "1000", f"{world.data_dir()}/cache/artifacts/{cached_weights.relative_to(cache)}")
    planned, executed = planned_then_done(world, "lab2")
    assert planned == executed
    assert planned[:2] == [["artifact", "data", "cached"], ["artifact", "weights", "push"]]
    summed = lab.docker("lab2", "exec", world.container, "sha256sum", "/models/weights.bin")
    assert summed.stdout.split()[0] == _sha(weights.read_bytes()), summed.stderr
    planned, executed = planned_then_done(world, "lab2")
    assert planned == executed and planned[:2] == [["artifact", "data", "cached"], ["artifact", "weights", "cached"]]


EXTRACTED = """\
device: {{kind: cpu}}
image: {{ref: {image}, tarball: {{source: "{tarball}"}}}}
artifacts:
  acc: {{source: "{archive}", target: /opt/acc, extract: true}}
"""


def test_an_extracted_archive_reaches_the_host_as_its_tree(world, lab, files, tmp_path):
    """An `extract: true` artifact is its unpacked tree on the host too (it arrived as the
    archive alone: a tar without directory entries, as a vendor's accelerate_mlu.tar.gz; a link
    and an empty directory in it travel as well); the next plan says cached; a file of the tree
    deleted in the host's cache makes the plan say push, and up restores it."""
    import io
    import tarfile

    tarball = files[0]
    archive = tmp_path / "acc.tar.gz"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as packed:
        for name, data in {"acc/setup.py": b"setup\n", "acc/src/accelerate/accelerator.py": b"accel\n"}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            packed.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("acc/accelerate")
        link.type, link.linkname = tarfile.SYMTYPE, "src/accelerate"
        packed.addfile(link)
        empty = tarfile.TarInfo("acc/cache")
        empty.type, empty.mode = tarfile.DIRTYPE, 0o755
        packed.addfile(empty)
    archive.write_bytes(buffer.getvalue())
    world.write(EXTRACTED.format(image=IMAGE, tarball=tarball, archive=archive))
    planned, executed = planned_then_done(world, "lab2")
    assert planned == executed and planned[0] == ["artifact", "acc", "fetch+push"]
    shown = lab.docker("lab2", "exec", world.container, "sh", "-c",
                       "cat /opt/acc/acc/setup.py /opt/acc/acc/accelerate/accelerator.py; test -d /opt/acc/acc/cache && echo dir")
    assert shown.stdout == "setup\naccel\ndir\n", shown.stderr
    planned, executed = planned_then_done(world, "lab2")
    assert planned == executed and planned[0] == ["artifact", "acc", "cached"]

    cache = world.remote("lab2", f"{world.data_dir()}/cache/artifacts")
    [lost] = cache.rglob("acc/src/accelerate/accelerator.py")
    lab.run_in("lab2", "rm", "-f", f"{world.data_dir()}/cache/artifacts/{lost.relative_to(cache)}")
    planned, executed = planned_then_done(world, "lab2")
    assert planned == executed and planned[0] == ["artifact", "acc", "push"]
    shown = lab.docker("lab2", "exec", world.container, "cat", "/opt/acc/acc/src/accelerate/accelerator.py")
    assert shown.stdout == "accel\n", shown.stderr
