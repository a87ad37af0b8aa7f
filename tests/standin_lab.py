"""What the stand-in runs of the shipped accelerator manifests share (tests/integration/test_standins.py
on this machine, tests/remote/test_remote_standin_nodes.py across SSH lab hosts): the loopback
upstream world, the stand-in images saved as the tarballs the manifests name, and the manifests
copied with their sources pointed at that world."""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import docker

import hostsim
from standin_cases import CASES, Case
from standin_images import BASE, build, ensure_base, remove, save_as
from standin_upstream import World, tar_gz, wheel
from support import REPO

# The MLU SDK images, both saved in one tarball, offered under each vendor file name over FTP.
MLU_IMAGES = {
    "chatglm3-mlu": ("yellow.hub.cambricon.com/pytorch/pytorch:v1.17.0-torch1.13.1-ubuntu20.04-py310",
                     "pytorch-v1.17.0-torch1.13.1-ubuntu20.04-py310.tar"),
    "chinese-alpaca2-mlu": ("yellow.hub.cambricon.com/pytorch/pytorch:v1.15.0-torch1.9-ubuntu18.04-py37",
                            "pytorch-v1.15.0-torch1.9-ubuntu18.04-py37.tar"),
}
# The Ascend manifests' default refs and the variables naming their tarballs (a local path here).
ASCEND_IMAGES = {
    "chatglm2-npu": ("envctl.local/ascend-pytorch:1.11.0", "ASCEND_PT111_TARBALL"),
    "chatglm2-npu-fastchat": ("envctl.local/ascend-torch-npu:py39", "ASCEND_TORCH_NPU_TARBALL"),
    "chatglm3-npu-mindformers": ("envctl.local/mindformers:r1.1.0", "MINDFORMERS_TARBALL"),
}
ACCELERATE_MLU = "/support/accelerate_mlu.tar.gz"


@dataclass
class Lab:
    root: Path
    world: World
    hosts: dict[str, Path]
    ascend_tarball: Path
    flash_attn_wheel: Path
    image_ids: dict[str, str]  # mlu | npu -> the stand-in's image ID

    def environ(self, case: Case) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ENVCTL_")}
        env.update(self.world.environ())
        env.update(HOME=str(self.root / "home"), ENVCTL_CACHE=str(self.root / "cache"),
                   ENVCTL_WORKSPACE=str(self.root / "workspaces"), ENVCTL_MANIFEST_PATH=str(self.root / "manifests"),
                   ENVCTL_HOST_ROOT=str(self.hosts[case.kind]))
        if case.manifest in MLU_IMAGES:
            env["CAMBRICON_PYTORCH_TARBALL"] = self.world.ftp_url(MLU_IMAGES[case.manifest][1])
            env["FLASH_ATTN_MLU_WHEEL"] = str(self.flash_attn_wheel)
            env["ACCELERATE_MLU_TARBALL"] = self.world.files.url_for(ACCELERATE_MLU)
        else:
            env[ASCEND_IMAGES[case.manifest][1]] = str(self.ascend_tarball)
        return env

    def envctl(self, env: dict, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "envctl", *args], check=False, capture_output=True, text=True, env=env,
                              timeout=timeout)

    def workspace(self, case: Case) -> Path:
        return self.root / "workspaces" / case.container


def memlock_limit(engine) -> int | None:
    """None when the engine can start a container with unlimited locked memory (the profiles ask
    for it, for CNCL/HCCL); else the hard limit it can give. Sandboxes without CAP_SYS_RESOURCE
    cannot raise it, and there the test asks for what is possible instead (nothing it proves
    depends on it)."""
    probe = engine.containers.create(BASE, ["true"], ulimits=[docker.types.Ulimit(name="memlock", soft=-1, hard=-1)])
    try:
        probe.start()
        return None
    except docker.errors.APIError:
        return resource.getrlimit(resource.RLIMIT_MEMLOCK)[1]
    finally:
        probe.remove(force=True)  # a container that could not start is not removed by the engine


def copy_manifests(target: Path, world: World, memlock: int | None) -> None:
    """The shipped manifests the cases use, with only the `source:` values of `Case.rewrite`
    replaced (commit pins by the local commits, https files by their loopback URLs); and, where
    the engine cannot give unlimited locked memory, the profiles' memlock set to what it can."""
    shutil.copytree(REPO / "manifests" / "profiles", target / "profiles")
    for profile in ("mlu370.yaml", "ascend910.yaml") if memlock is not None else ():
        path = target / "profiles" / profile
        text = path.read_text(encoding="utf-8")
        assert text.count("    memlock: -1\n") == 1, f"{profile}: memlock is no longer -1"
        path.write_text(text.replace("    memlock: -1\n", f"    memlock: {memlock}\n"), encoding="utf-8")
    for case in CASES:
        if (target / case.manifest).exists():
            continue
        shutil.copytree(REPO / "manifests" / case.manifest, target / case.manifest)
        path = target / case.manifest / "manifest.yaml"
        original = path.read_text(encoding="utf-8")
        text = original
        for old in case.rewrite:
            new = world.git_source(old) if old.startswith("git+") else world.http_url(old)
            assert text.count(f"source: {old}\n") == 1, f"{case.manifest}: source {old} is not there exactly once"
            text = text.replace(f"source: {old}\n", f"source: {new}\n")
        path.write_text(text, encoding="utf-8")
        before, after = original.splitlines(), text.splitlines()
        assert len(before) == len(after)
        changed = [(a, b) for a, b in zip(before, after) if a != b]
        assert len(changed) == len(case.rewrite)
        for a, b in changed:
            indent = len(a) - len(a.lstrip())
            assert a.lstrip().startswith("source: ") and b[:indent + 8] == a[:indent + 8], f"not only a source changed: {a!r} → {b!r}"


@contextlib.contextmanager
def open_lab(engine, root: Path):
    """The loopback upstream world started, both stand-in images built and saved as the
    manifests' tarballs, simulated MLU (16 devices) and NPU (8) host roots here, the manifests
    copied with their sources rewritten; everything taken down again on leaving."""
    ensure_base()
    world = World(root)
    refs = [ref for ref, _ in MLU_IMAGES.values()] + [ref for ref, _ in ASCEND_IMAGES.values()]
    try:
        world.start()
        first, second = (root / "ftp" / name for _, name in MLU_IMAGES.values())
        mlu_id = save_as(engine, build(engine, "mlu"), [ref for ref, _ in MLU_IMAGES.values()], first)
        os.link(first, second)
        ascend_tarball = root / "ascend-standin.tar"
        npu_id = save_as(engine, build(engine, "ascend"), [ref for ref, _ in ASCEND_IMAGES.values()], ascend_tarball)
        flash_attn = root / "wheels" / "flash_attn-2.1.1_mlu-cp310-cp310-linux_x86_64.whl"
        flash_attn.parent.mkdir()
        flash_attn.write_bytes(wheel("flash_attn", "2.1.1"))
        world.files.put(ACCELERATE_MLU, tar_gz({
            "accelerate_mlu/setup.py": b"# envctl-standin: accelerate_mlu's setup.py\n",
            "accelerate_mlu/src/accelerate/accelerator.py": b"# envctl-standin: accelerate_mlu (uses cndsp)\n",
            "accelerate_mlu/src/accelerate/utils/imports.py": b"# envctl-standin: accelerate_mlu (uses cndsp)\n"}))
        hosts = {"mlu": hostsim.mlu_host(root / "mlu-host", cards=16), "npu": hostsim.npu_host(root / "npu-host", cards=8)}
        copy_manifests(root / "manifests", world, memlock_limit(engine))
        yield Lab(root, world, hosts, ascend_tarball, flash_attn, {"mlu": mlu_id, "npu": npu_id})
    finally:
        world.stop()
        for container in engine.containers.list(all=True, filters={"label": "io.envctl.manifest"}, ignore_removed=True):
            if container.name in {case.container for case in CASES}:
                container.remove(force=True)
        remove(engine, refs)
