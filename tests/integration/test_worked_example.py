"""The README's worked example (issue 16): the two manifests a lab engineer writes for an Ascend
910B server, LoRA fine-tuning of Qwen2.5 with LLaMA-Factory (manifests/qwen25-llamafactory-910b)
and serving it with vllm-ascend on port 8000 (manifests/qwen25-vllm-ascend-910b), validated and
planned by the CLI as the README shows them, on a simulated 8-card 910B host (tests/hostsim.py:
device nodes made with mknod, driver files, npu-smi's table with 910B chips), with the engine
under test asked for the images and a real registry on loopback as the lab's registry mirror.

Their images are quay.io/ascend/vllm-ascend:v0.13.0 and docker.io/hiyouga/llamafactory:0.9.4-npu-a2,
which no test can reach; the user configuration maps quay.io and docker.io to a loopback
docker-registry (tests/servers/registry.py) that holds small stand-in images under those
names, as a pull-through mirror holds the real ones (m.daocloud.io/quay.io/..., the mirror
vllm-ascend's quick start names). So `plan` shows what it shows for a lab in China: a pull,
through the mirror, of how many bytes, unpinned until `envctl lock`.

What each plan must say is what the README's walk-through says: the cards and why, the device
nodes (/dev/davinciN, davinci_manager, devmm_svm, hisi_hdc) and the driver mounts vllm-ascend's
quick start lists, the pull, the artifacts, HF_TOKEN passed by name only, the entrypoints'
commands, and the ports served. Then the server's session for real, as far as it can run
here: `up` of `qwen25-vllm-ascend-910b:merged` pulls the stand-in through the mirror and starts
the container with the simulated 910B's nodes, `exec serve --detach` returns once /v1/models
answers (the stand-in `vllm` serves it with BusyBox httpd after checking the merged model's
directory), `status` lists it, `stop` ends it.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
import urllib.request
import uuid

import pytest
import yaml

from engines import CLASSIC, connect
from servers.registry import Registry, push_busybox
from support import REPO

FINETUNE = "qwen25-llamafactory-910b"
SERVE = "qwen25-vllm-ascend-910b"
TOKEN = "hf_workedExampleToken0123456789"  # not a real token: it must appear nowhere in envctl's output

# The driver mounts of vllm-ascend's quick start docker run (v0.13.0), which the host has.
QUICK_START_MOUNTS = ("/usr/local/dcmi", "/usr/local/bin/npu-smi", "/usr/local/Ascend/driver/lib64",
                      "/usr/local/Ascend/driver/version.info", "/etc/ascend_install.info")
CONTROL_NODES = ("/dev/davinci_manager", "/dev/devmm_svm", "/dev/hisi_hdc")


# The stand-in's programs (BusyBox has no bash and no vllm). The ascend910 profile's shell is
# /bin/bash -c SCRIPT envctl COMMAND; BusyBox sh runs that script alike.
BASH = b"""#!/bin/sh
exec /bin/sh "$@"
"""
# `vllm serve MODEL --served-model-name NAME --port PORT ...`: records its arguments and the
# cards it sees in the workspace, refuses a model directory without config.json, then serves
# /v1/models in the foreground with BusyBox httpd, as `vllm serve` serves it once loaded.
VLLM = b"""#!/bin/sh
echo "$@" > /envctl/vllm-argv.txt
env | grep -E '^(ASCEND_RT_VISIBLE_DEVICES|ENVCTL_NUM_CARDS)=' | sort > /envctl/vllm-env.txt
[ "$1" = serve ] || { echo "vllm: no command $1" >&2; exit 2; }
[ -f "$2/config.json" ] || { echo "vllm: $2 holds no config.json" >&2; exit 1; }
port=8000 name=$2
while [ $# -gt 0 ]; do
  case $1 in --port) port=$2; shift ;; --served-model-name) name=$2; shift ;; esac
  shift
done
mkdir -p /tmp/www/v1
printf '{"object": "list", "data": [{"id": "%s", "object": "model"}]}' "$name" > /tmp/www/v1/models
echo "INFO:     Uvicorn running on http://0.0.0.0:$port (stand-in)"
exec httpd -f -p "$port" -h /tmp/www
"""


def _push_stand_in(client, registry: Registry, repository: str, tag: str, marker: bytes) -> str:
    """The BusyBox rootfs with /bin/bash and /usr/local/bin/vllm (executable: push_busybox's
    extra files are not), imported, pushed to `registry` and removed from the engine again."""
    from testimages import _rootfs_tar

    buffer = io.BytesIO(_rootfs_tar({"etc/stand-in": marker}))
    with tarfile.open(fileobj=buffer, mode="a") as archive:
        for directory in ("usr", "usr/local", "usr/local/bin"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            archive.addfile(info)
        for name, data in (("bin/bash", BASH), ("usr/local/bin/vllm", VLLM)):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            archive.addfile(info, io.BytesIO(data))
    name = f"{registry.host}/{repository}"
    client.api.import_image_from_data(buffer.getvalue(), repository=name, tag=tag)
    digest = None
    try:
        for event in client.api.push(name, tag=tag, stream=True, decode=True):
            if "error" in event:
                pytest.fail(f"pushing {name}:{tag} failed: {event['error']}", pytrace=False)
            digest = (event.get("aux") or {}).get("Digest") or digest
    finally:
        client.images.remove(f"{name}:{tag}", force=True)
    assert digest and digest.startswith("sha256:"), f"the push of {name}:{tag} reported no digest"
    return digest


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    """A loopback registry holding a stand-in of each image under its canonical name, as a
    pull-through mirror with a path prefix per registry does (quay.io/..., docker.io/...)."""
    classic = connect(CLASSIC).client
    with Registry(tmp_path_factory.mktemp("mirror")) as registry:
        marker = uuid.uuid4().hex.encode()  # this run's bytes: a digest no other run pushed
        digests = {
            "quay.io/ascend/vllm-ascend:v0.13.0":
                _push_stand_in(classic, registry, "quay.io/ascend/vllm-ascend", "v0.13.0", marker),
            "docker.io/hiyouga/llamafactory:0.9.4-npu-a2":
                push_busybox(classic, registry, "docker.io/hiyouga/llamafactory", "0.9.4-npu-a2", {"etc/stand-in": marker}),
        }
        yield registry, digests


@pytest.fixture
def lab(make_env, mirror, tmp_path):
    """The 910B server (8 cards, driver 24.1.rc2) and this user's configuration: the mirrors,
    and the manifests found by name as a user finds the shipped ones."""
    registry, digests = mirror
    env = make_env("npu", cards=8, version="24.1.rc2", model="910B")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"mirrors": {"registries": {
        "quay.io": f"{registry.host}/quay.io", "docker.io": f"{registry.host}/docker.io"}}}))
    environ = env.environ(ENVCTL_CONFIG=str(config), ENVCTL_MANIFEST_PATH=str(REPO / "manifests"), HF_TOKEN=TOKEN)
    return env, environ, registry, config


def _plan(env, environ, reference: str, *extra: str):
    done = env.run("plan", reference, *extra, env=environ)
    assert TOKEN not in done.stdout + done.stderr
    return done


def _devices(text: str, cards: list[int]) -> None:
    for card in cards:
        assert re.search(rf"device \S+/dev/davinci{card} → /dev/davinci{card}\n", text), (card, text)
    assert not re.search(rf"/dev/davinci(?!{'|'.join(map(str, cards))}\b)\d+ →", text), text
    for node in CONTROL_NODES:
        assert re.search(rf"device \S+{node} → {node}\n", text), (node, text)
    for mount in QUICK_START_MOUNTS:
        assert re.search(rf"mount  \S+{re.escape(mount)} → {re.escape(mount)} \(ro\)\n", text), (mount, text)
    assert not re.search(r"^\s+--privileged", text, re.M), text  # a note may name it; docker create has it not


def _pull(text: str, canonical: str, registry: Registry, config) -> None:
    """The image step: not on the engine, pulled through the mirror (named, with where it was
    set), its size from the registry's manifest, no pin yet (the manifests leave it to lock)."""
    name, tag = canonical.rsplit(":", 1)
    assert re.search(rf"→ pull: not on the engine; pulled {re.escape(f'{registry.host}/{name}:{tag}')}", text), text
    assert f"mirror {registry.host}/{name.split('/')[0]} (set in {config}" in text, text
    assert "digest not pinned yet (envctl lock)" in text, text
    assert re.search(r"download \d+(\.\d)? (B|KiB|MiB) \(compressed layers for this platform\)", text), text


def test_both_manifests_validate_with_every_variant(lab):
    env, environ, _, _ = lab
    for name, variants in ((FINETUNE, "14b, 7b, modelscope"), (SERVE, "14b, 7b, merged, modelscope")):
        done = env.run("validate", name, env=environ)
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"ok: {name} [{variants}]" in done.stdout, done.stdout


def test_the_finetune_plan_on_a_910b_host(lab):
    env, environ, registry, config = lab
    done = _plan(env, environ, FINETUNE)
    text = done.stdout
    # Ready: nothing blocks, nothing is left to provide, the engine and the registry answered.
    assert done.returncode == 0 and "blockers   none" in text and "ready: up can proceed" in text, text
    assert re.search(r"npu cards 0,1,2,3\n\s+why\s+4 free cards, lowest first", text), text
    _devices(text, [0, 1, 2, 3])
    assert "env    ASCEND_RT_VISIBLE_DEVICES=0,1,2,3" in text
    _pull(text, "docker.io/hiyouga/llamafactory:0.9.4-npu-a2", registry, config)
    assert "source hf://Qwen/Qwen2.5-7B-Instruct@a09a35458c702b33eeacc393d103063234e8bc28" in text
    assert "→ /models/Qwen2.5-7B-Instruct (read-only)" in text
    assert "--network host" in text and "--ipc host" in text and "--workdir /app" in text
    # The token: passed by name, set from the environment, never its value.
    assert "HF_TOKEN (passed, set from the environment)" in text, text
    assert "--env HF_TOKEN" not in text
    # The entrypoints, as the README walks through them.
    assert ("llamafactory-cli train /opt/envctl/qwen25-llamafactory-910b/qwen25_lora_sft.yaml "
            'model_name_or_path="$MODEL_PATH"') in text
    assert "env OUTPUT_DIR=/envctl/outputs/qwen25-7b/lora" in text
    assert "env EXPORT_DIR=/envctl/outputs/qwen25-7b/merged" in text
    assert re.search(r"webui  \(cards 0,1,2,3; serves :7860\)", text), text
    assert re.search(r"chat  \(cards 0; interactive\)", text), text

    as_json = json.loads(_plan(env, environ, FINETUNE, "--json").stdout)
    assert as_json["blockers"] == [] and as_json["container"]["name"] == "envctl-qwen25-llamafactory-910b-7b"
    assert TOKEN not in json.dumps(as_json)


def test_the_serving_plan_of_the_14b_fine_tune_merged(lab, tmp_path):
    """`qwen25-vllm-ascend-910b:14b+merged`: the size's vars and cards, then the merged model
    (a directory on the host, as `envctl exec export` of the fine-tune writes it) in place of the
    hub's weights; the served name from the combination, and overridden with --var."""
    env, environ, registry, config = lab
    merged = tmp_path / "outputs" / "qwen25-14b" / "merged"
    merged.mkdir(parents=True)
    (merged / "config.json").write_text('{"architectures": ["Qwen2ForCausalLM"]}\n')
    reference = f"{SERVE}:14b+merged"

    without = _plan(env, environ, reference)
    assert without.returncode == 5, without.stdout + without.stderr
    assert "needs (provide these before up):\n  - artifact qwen: Run `envctl exec export` in qwen25-llamafactory-910b" \
        in without.stdout, without.stdout

    done = _plan(env, dict(environ, QWEN25_MERGED=str(merged)), reference)
    text = done.stdout
    assert "blockers   none" in text and "needs (provide" not in text, text
    assert re.search(r"npu cards 0,1\n\s+why\s+2 free cards, lowest first", text), text
    _devices(text, [0, 1])
    _pull(text, "quay.io/ascend/vllm-ascend:v0.13.0", registry, config)
    assert f"source {merged}" in text and "→ /models/Qwen2.5-14B-Instruct (read-only)" in text, text
    assert "source hf://" not in text, text
    assert re.search(r"serve  \(cards 0,1; serves :8000\)", text), text
    assert 'vllm serve "$MODEL_PATH" --served-model-name "$SERVED_MODEL_NAME"' in text
    for line in ("env MODEL_PATH=/models/Qwen2.5-14B-Instruct", "env SERVED_MODEL_NAME=qwen25-14b-lora",
                 "env PORT=8000", "env ENVCTL_NUM_CARDS=2"):
        assert line in text, (line, text)
    assert re.search(r"container  envctl-qwen25-vllm-ascend-910b-14b-merged-[0-9a-f]{6}  create", text), text
    # Nothing in it asks for a token: no HF_TOKEN line, and the token set here shows nowhere.
    assert "HF_TOKEN" not in text

    # A second server on the same host (host network): another name and port, from the command line.
    second = _plan(env, dict(environ, QWEN25_MERGED=str(merged)), reference,
                   "--var", "served_name=lab-qwen14b-v2", "--var", "port=8001")
    assert re.search(r"serve  \(cards 0,1; serves :8001\)", second.stdout), second.stdout
    assert "env SERVED_MODEL_NAME=lab-qwen14b-v2" in second.stdout and "env PORT=8001" in second.stdout
    wrong = _plan(env, environ, reference, "--var", "port=eight")
    assert wrong.returncode == 2 and "port" in wrong.stderr, wrong.stdout + wrong.stderr


def test_show_says_where_each_value_of_a_combination_comes_from(lab):
    env, environ, _, _ = lab
    done = env.run("show", f"{SERVE}:14b+merged", "--var", "served_name=lab-qwen", "--origin", env=environ)
    assert done.returncode == 0, done.stderr
    text = done.stdout
    manifest = "manifest.yaml"
    assert re.search(r"served_name: lab-qwen\s+# --var", text), text
    assert re.search(rf"cards: 2\s+# variant 14b {manifest}:\d+", text), text
    assert re.search(rf"model_dir: /models/Qwen2\.5-14B-Instruct\s+# variant 14b {manifest}:\d+", text), text
    assert re.search(rf"source: ''\s+# variant merged {manifest}:\d+; \$\{{QWEN25_MERGED:-\}} ← its default", text), text
    # The serve entrypoint's readiness, as `exec serve --detach` waits for it.
    resolved = yaml.safe_load(env.run("show", f"{SERVE}:14b+merged", env=environ).stdout)
    serve = resolved["entrypoints"]["serve"]
    assert serve["ports"] == [8000] and serve["ready"] == {"http": "/v1/models", "timeout": 1800.0}
    assert re.search(rf"- 8000\s+# manifest {manifest}:\d+; \$\{{port\}} ← vars.port", text), text
    assert resolved["device"]["cards"] == 2 and resolved["variant"] == "14b+merged"
    # The fine-tune's pair of a size and another source; its web UI is ready when its page answers.
    finetune = yaml.safe_load(env.run("show", f"{FINETUNE}:14b+modelscope", env=environ).stdout)
    assert finetune["artifacts"]["qwen"]["source"] == "modelscope://Qwen/Qwen2.5-14B-Instruct@master"
    assert finetune["entrypoints"]["webui"]["ready"] == {"http": "/", "timeout": 300.0}
    assert finetune["container"]["pass_env"] == ["HF_TOKEN"]


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _memlock_limit(engine) -> int | None:
    """None when the engine starts a container with unlimited locked memory (the ascend910
    profile asks for it, for HCCL); else the hard limit it can give: an engine without
    CAP_SYS_RESOURCE (nested, rootless) cannot raise it (tests/standin_lab.py does the same)."""
    import resource

    import docker
    from testimages import _rootfs_tar

    name = f"envctl-it/memlock-probe:{uuid.uuid4().hex[:8]}"
    engine.api.import_image_from_data(_rootfs_tar(), repository=name.split(":")[0], tag=name.split(":")[1])
    probe = engine.containers.create(name, ["true"], ulimits=[docker.types.Ulimit(name="memlock", soft=-1, hard=-1)])
    try:
        probe.start()
        return None
    except docker.errors.APIError:
        return resource.getrlimit(resource.RLIMIT_MEMLOCK)[1]
    finally:
        probe.remove(force=True)
        engine.images.remove(name, force=True)


def _manifests_for(engine, target) -> str:
    """The shipped profiles and the server's manifest as they are, but for the profile's memlock
    where this engine cannot give unlimited (nothing this test proves depends on it)."""
    import shutil

    shutil.copytree(REPO / "manifests" / "profiles", target / "profiles")
    shutil.copytree(REPO / "manifests" / SERVE, target / SERVE)
    limit = _memlock_limit(engine)
    if limit is not None:
        profile = target / "profiles" / "ascend910.yaml"
        text = profile.read_text(encoding="utf-8")
        assert text.count("    memlock: -1\n") == 1, "ascend910: memlock is no longer -1"
        profile.write_text(text.replace("    memlock: -1\n", f"    memlock: {limit}\n"), encoding="utf-8")
    return str(target)


def test_the_server_session_up_serve_detached_status_stop(lab, tmp_path, engine):
    """The README's second half on the simulated 910B: up of the merged variant (a port of its
    own, --var, since the container shares this machine's network), serve detached until
    /v1/models answers, listed by status, answering after envctl returned, stopped."""
    env, environ, registry, config = lab
    environ = dict(environ, ENVCTL_MANIFEST_PATH=_manifests_for(engine, tmp_path / "manifests"))
    merged = tmp_path / "merged"
    merged.mkdir()
    (merged / "config.json").write_text('{"architectures": ["Qwen2ForCausalLM"]}\n')
    (merged / "model-00001-of-00001.safetensors").write_bytes(b"stand-in weights")
    environ = dict(environ, QWEN25_MERGED=str(merged))
    port = _free_port()
    container = "envctl-qwen25-vllm-ascend-910b-merged"
    images = ["quay.io/ascend/vllm-ascend:v0.13.0", f"{registry.host}/quay.io/ascend/vllm-ascend:v0.13.0"]
    try:
        done = env.run("up", f"{SERVE}:merged", "--var", f"port={port}", env=environ, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
        assert TOKEN not in done.stdout + done.stderr
        attrs = engine.api.inspect_image("quay.io/ascend/vllm-ascend:v0.13.0")  # tagged by its canonical name
        assert any(d.endswith(mirror_digest(registry)) for d in attrs["RepoDigests"]), attrs["RepoDigests"]
        created = engine.api.inspect_container(container)
        assert created["HostConfig"]["NetworkMode"] == "host" and not created["HostConfig"]["Privileged"]
        assert sorted(d["PathInContainer"] for d in created["HostConfig"]["Devices"]) == \
            ["/dev/davinci0", "/dev/davinci_manager", "/dev/devmm_svm", "/dev/hisi_hdc"]

        started = env.run("exec", "serve", "--detach", "--env", SERVE, env=environ, timeout=300)
        assert started.returncode == 0, started.stdout + started.stderr
        assert f"GET /v1/models answers 2xx on port {port}" in started.stdout, started.stdout
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=10) as answer:
            assert json.load(answer)["data"][0]["id"] == "qwen25-7b-lora"
        workspace = env.base / "workspaces" / container
        assert (workspace / "vllm-argv.txt").read_text().split() == [
            "serve", "/models/Qwen2.5-7B-Instruct", "--served-model-name", "qwen25-7b-lora", "--host", "0.0.0.0",
            "--port", str(port), "--tensor-parallel-size", "1", "--max-model-len", "8192"]
        assert (workspace / "vllm-env.txt").read_text() == "ASCEND_RT_VISIBLE_DEVICES=0\nENVCTL_NUM_CARDS=1\n"

        status = env.run("status", env=environ)
        assert "running serve (detached) since " in status.stdout and f"serves :{port}" in status.stdout, status.stdout

        stopped = env.run("stop", "serve", "--env", SERVE, env=environ)
        assert stopped.returncode == 0 and "stopped  serve (detached)" in stopped.stdout, stopped.stdout + stopped.stderr
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=5)
    finally:
        import docker

        try:
            engine.containers.get(container).remove(force=True)
        except docker.errors.NotFound:
            pass
        for name in images:
            try:
                engine.images.remove(name, force=True)
            except docker.errors.ImageNotFound:
                pass


def mirror_digest(registry) -> str:
    """The manifest digest the mirror serves for the server's stand-in."""
    answer = urllib.request.urlopen(urllib.request.Request(
        f"{registry.url}/v2/quay.io/ascend/vllm-ascend/manifests/v0.13.0", method="HEAD",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"}), timeout=10)
    return answer.headers["Docker-Content-Digest"]
