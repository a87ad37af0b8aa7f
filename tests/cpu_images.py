"""The CPU images of the real multi-node tests, made on this machine without a registry:

- `ensure_cpu_reference()`: the CPU reference image (images/cpu-reference, torch 2.13 CPU), built
  exactly as `make demo` builds it (prepare.sh, then `envctl image chatglm-tiny-cpu`), so the
  tests and the demo share one image.
- `ensure_deepspeed_image(engine)`: tests/images/cpu-deepspeed, DeepSpeed on top of it.
- `load_on_lab(lab, ref, hosts)`: the image into SSH lab hosts' own engines (`docker save`
  streamed into each host's `docker load`), skipped where the host already has that image ID.

A step that cannot be done fails the test with its reason (never a skip).
"""

from __future__ import annotations

import os
import subprocess
import sys

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


def load_on_lab(lab, ref: str, hosts: list[str]) -> str:
    """Make `ref` present on each lab host's engine with this engine's image ID; returns the ID."""
    image_id = docker.from_env().images.get(ref).id
    for host in hosts:
        present = lab.docker(host, "image", "inspect", "--format", "{{.Id}}", ref)
        if present.returncode == 0 and present.stdout.strip() == image_id:
            continue
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        save = subprocess.Popen(["docker", "save", ref], stdout=subprocess.PIPE, env=env)
        load = subprocess.run(["docker", "-H", lab.docker_host(host), "load"], stdin=save.stdout, capture_output=True,
                              text=True, timeout=1200, env=env)
        save.stdout.close()
        if save.wait(timeout=60) != 0 or load.returncode != 0:
            pytest.fail(f"loading {ref} on {host} failed: {load.stderr[-2000:]}", pytrace=False)
        loaded = lab.docker(host, "image", "inspect", "--format", "{{.Id}}", ref).stdout.strip()
        assert loaded == image_id, f"{host} has {ref} as {loaded}, not {image_id}"
    return image_id


def remove_from_lab(lab, ref: str, hosts: list[str]) -> None:
    """Remove the image from the lab hosts' engines again (each holds a full copy on disk)."""
    for host in hosts:
        lab.docker(host, "image", "rm", "--force", ref)
