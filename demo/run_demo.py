"""`make demo`: the CPU reference workflow end to end, on this machine, through envctl's real paths.

1. The CPU reference image's build context is prepared (debootstrap base, wheels) and the image
   is built by `envctl image` (the same step `up` takes).
2. A tiny LLaMA-architecture model standing in for ChatGLM and a small ADGEN-format dataset are
   generated inside that image (deterministic bytes), then served by a loopback
   Hugging Face-compatible mirror, as hf-mirror.com would serve the real ones.
3. `envctl up chatglm-tiny-cpu` fetches them through HF_ENDPOINT into the cache, starts the
   container and runs setup; `envctl exec train` P-Tunes; `envctl exec infer` generates.

Everything the demo writes stays under .demo/ (cache, workspace with the logs and checkpoint).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from servers.hf_endpoint import HFEndpoint  # noqa: E402  (the loopback mirror the tests use too)

STATE = Path(os.environ.get("ENVCTL_DEMO_STATE") or REPO / ".demo")  # tests point it elsewhere
ENV_NAME = "envctl-chatglm-tiny-cpu"


def step(title: str) -> float:
    print(f"\n== {title}", flush=True)
    return time.perf_counter()


def envctl(*args: str, env: dict) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "envctl", *args], env=env, text=True, stdout=subprocess.PIPE)
    print(done.stdout, end="", flush=True)
    if done.returncode != 0:
        raise SystemExit(f"demo: `envctl {' '.join(args)}` failed with exit code {done.returncode}")
    return done


def files_of(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def commit_of(files: dict[str, bytes]) -> str:
    """A stable commit id for generated content: the same bytes give the same revision."""
    digest = hashlib.sha1()
    for name, data in files.items():
        digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return digest.hexdigest()


def main() -> None:
    started = time.perf_counter()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENVCTL_")}
    env.update(ENVCTL_CACHE=str(STATE / "cache"), ENVCTL_WORKSPACE=str(STATE / "workspaces"))

    t = step("image: prepare the build context, then `envctl image chatglm-tiny-cpu`")
    subprocess.run(["bash", str(REPO / "images" / "cpu-reference" / "prepare.sh")], check=True, env=env)
    image = envctl("image", "chatglm-tiny-cpu", env=env).stdout.strip().splitlines()[-1]
    print(f"   ({time.perf_counter() - t:.1f} s)")

    t = step("weights and dataset: generated in the image, served by a loopback HF mirror")
    repos = STATE / "repos"
    if not (repos / "done").exists():
        repos.mkdir(parents=True, exist_ok=True)
        subprocess.run(["docker", "run", "--rm", "--network", "none", "-v", f"{REPO / 'demo'}:/demo:ro",
                        "-v", f"{repos}:/out", image, "python", "/demo/make_tiny_repos.py", "/out"], check=True)
        (repos / "done").write_text("")
    model, dataset = files_of(repos / "model"), files_of(repos / "dataset")
    print(f"   ({time.perf_counter() - t:.1f} s)")

    with HFEndpoint() as mirror:
        mirror.add_repo("envctl/tiny-glm", files=model, revision_sha=commit_of(model))
        mirror.add_repo("envctl/tiny-adgen", repo_type="dataset", files=dataset, revision_sha=commit_of(dataset))
        env.update(HF_ENDPOINT=mirror.url, TINY_GLM_REVISION=commit_of(model), TINY_ADGEN_REVISION=commit_of(dataset))
        t = step(f"envctl up chatglm-tiny-cpu   (HF_ENDPOINT={mirror.url})")
        envctl("up", "chatglm-tiny-cpu", env=env)
        print(f"   ({time.perf_counter() - t:.1f} s, {mirror.bytes_sent} bytes from the mirror)")

    t = step("envctl exec train   (P-Tuning, a few steps)")
    envctl("exec", "train", "--env", ENV_NAME, env=env)
    print(f"   ({time.perf_counter() - t:.1f} s)")

    t = step("envctl exec infer")
    out = envctl("exec", "infer", "--env", ENV_NAME, env=env).stdout
    print(f"   ({time.perf_counter() - t:.1f} s)")

    t = step("envctl up chatglm-tiny-cpu --offline   (again: nothing to do)")
    envctl("up", "chatglm-tiny-cpu", "--offline", env=env)
    print(f"   ({time.perf_counter() - t:.2f} s)")

    generated = next((line for line in out.splitlines() if line.startswith("generated:")), "generated: (none)")
    workspace = STATE / "workspaces" / ENV_NAME
    print(f"\n== done in {time.perf_counter() - started:.0f} s")
    print(generated)
    print(f"logs:       {workspace / 'logs'}")
    print(f"checkpoint: {workspace / 'output' / 'ptune'}")
    print(f"stop it:    ENVCTL_WORKSPACE={STATE / 'workspaces'} .venv/bin/envctl down {ENV_NAME}")


if __name__ == "__main__":
    main()
