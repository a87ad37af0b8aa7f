"""The CPU images of the real multi-node tests, made on this machine without a registry:

- `ensure_cpu_reference()`: the CPU reference image (images/cpu-reference, torch 2.13 CPU), built
  exactly as `make demo` builds it (prepare.sh, then `envctl image chatglm-tiny-cpu`), so the
  tests and the demo share one image.
- `ensure_deepspeed_image(engine)`: tests/images/cpu-deepspeed, DeepSpeed on top of it.
- `saved_tarball(ref)`: the image as a `docker save` tarball, written once per image ID in a
  session (docker save of the 1.7 GB CPU reference image takes ~40-50 s here; every lab test
  and fixture that needs it as a file or on a lab host shares that one).
- `load_on_lab(lab, ref, hosts)`: that tarball into SSH lab hosts' own engines, every host at
  once, skipped where the host already has that image ID.

A step that cannot be done fails the test with its reason (never a skip).
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
from pathlib import Path

import docker
import pytest

from support import REPO

CPU_REFERENCE = "envctl/cpu-reference:py311-torch2.13"  # manifests/chatglm-tiny-cpu image.ref
DEEPSPEED = "envctl-test/cpu-deepspeed:local"
DEEPSPEED_CONTEXT = REPO / "tests" / "images" / "cpu-deepspeed"


def _run(argv: list[str], what: str, timeout: int, env: dict | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    if done.returncode != 0:
        pytest.fail(f"{what} failed (exit {done.returncode}):\n{done.stderr[-3000:]}", pytrace=False)
    return done


def ensure_cpu_reference() -> str:
    """Build the CPU reference image when this engine lacks it (or its build context changed);
    returns its ref. First build: debootstrap base plus about 250 MB of wheels, minutes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENVCTL_")}
    _run(["bash", str(REPO / "images" / "cpu-reference" / "prepare.sh")], "preparing images/cpu-reference", 1800, env)
    _run([sys.executable, "-m", "envctl", "image", "chatglm-tiny-cpu"], "envctl image chatglm-tiny-cpu", 1800, env)
    return CPU_REFERENCE


def ensure_deepspeed_image(engine) -> str:
    """tests/images/cpu-deepspeed built FROM the CPU reference image (its wheels gathered by its
    prepare.sh); returns its ref. The engine's build cache makes a rebuild of an unchanged
    context a matter of seconds."""
    base = ensure_cpu_reference()
    _run(["bash", str(DEEPSPEED_CONTEXT / "prepare.sh")], "preparing tests/images/cpu-deepspeed", 600,
         {**os.environ, "PYTHON": sys.executable})
    try:
        engine.images.build(path=str(DEEPSPEED_CONTEXT), tag=DEEPSPEED, buildargs={"BASE": base}, rm=True, forcerm=True)
    except (docker.errors.BuildError, docker.errors.APIError) as exc:
        log = "".join(str(line.get("stream", "")) for line in getattr(exc, "build_log", []))
        pytest.fail(f"building tests/images/cpu-deepspeed failed: {exc}\n{log[-3000:]}", pytrace=False)
    return DEEPSPEED


# Where saved tarballs go: the remote tests' session directory under pytest's base temporary
# directory (tests/remote/conftest.py sets it; pytest removes old runs' directories, so a run
# killed before its end leaves nothing for long), else a directory removed at exit.
saved_dir: Path | None = None
_saving = threading.Lock()


def _machine_env() -> dict:
    """The environment of a docker CLI or client that talks to this machine's engine."""
    return {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}


def _machine_engine() -> docker.DockerClient:
    return docker.from_env(environment=_machine_env())


def saved_tarball(ref: str) -> Path:
    """`ref` on this machine's engine as a `docker save` tarball, written once per image ID and
    ref in this process (to a .part file first: an interrupted save is never taken whole), and
    checked to hold that image ID (the config digest in its manifest.json, classic store)."""
    global saved_dir
    image_id = _machine_engine().images.get(ref).id.removeprefix("sha256:")
    with _saving:
        if saved_dir is None:
            saved_dir = Path(tempfile.mkdtemp(prefix="envctl-test-tarballs-", dir="/var/tmp"))
            atexit.register(shutil.rmtree, saved_dir, True)
        name = hashlib.sha256(ref.encode()).hexdigest()[:12]
        tarball = saved_dir / f"{image_id}-{name}.tar"
        if not tarball.exists():
            part = tarball.with_name(tarball.name + ".part")
            _run(["docker", "save", "-o", str(part), ref], f"docker save {ref}", 1800, _machine_env())
            with tarfile.open(part) as saved:
                manifest = json.load(saved.extractfile("manifest.json"))
            held = [entry["Config"].removeprefix("blobs/sha256/").removesuffix(".json") for entry in manifest]
            if held != [image_id]:  # the tag moved meanwhile (a rebuild beside this run)
                part.unlink()
                pytest.fail(f"docker save {ref} wrote {held}, not {image_id}", pytrace=False)
            part.rename(tarball)
    return tarball


def load_on_lab(lab, ref: str, hosts: list[str]) -> str:
    """Make `ref` present on each lab host's engine with this engine's image ID, loading its
    saved tarball on every host that lacks it at once; returns the ID."""
    image_id = _machine_engine().images.get(ref).id
    lacking = []
    for host in hosts:
        present = lab.docker(host, "image", "inspect", "--format", "{{.Id}}", ref)
        if present.returncode != 0 or present.stdout.strip() != image_id:
            lacking.append(host)
    if not lacking:
        return image_id
    tarball = saved_tarball(ref)
    loads = {host: subprocess.Popen(["docker", "-H", lab.docker_host(host), "load", "-q", "-i", str(tarball)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_machine_env())
             for host in lacking}
    try:
        said = {host: load.communicate(timeout=1200)[1] for host, load in loads.items()}
    finally:
        for load in loads.values():  # a load that timed out is not left running
            if load.poll() is None:
                load.kill()
                load.wait()
    failed = {host: errors for host, errors in said.items() if loads[host].returncode != 0}
    if failed:
        pytest.fail("\n".join(f"loading {ref} on {host} failed: {errors[-2000:]}" for host, errors in failed.items()),
                    pytrace=False)
    for host in lacking:
        loaded = lab.docker(host, "image", "inspect", "--format", "{{.Id}}", ref).stdout.strip()
        assert loaded == image_id, f"{host} has {ref} as {loaded}, not {image_id}"
    return image_id


def remove_from_lab(lab, ref: str, hosts: list[str]) -> None:
    """Remove the image from the lab hosts' engines again (each holds a full copy on disk)."""
    for host in hosts:
        lab.docker(host, "image", "rm", "--force", ref)
