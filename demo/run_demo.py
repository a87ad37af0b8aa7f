"""`make demo`: the CPU reference workflow end to end, on this machine, through envctl's real paths.

1. The CPU reference image's build context is prepared (debootstrap base, wheels) and the image
   is built by `envctl image` (the same step `up` takes).
2. A tiny LLaMA-architecture model standing in for ChatGLM and a small ADGEN-format dataset are
   generated inside that image (deterministic bytes), then served by a loopback
   Hugging Face-compatible mirror, as hf-mirror.com would serve the real ones.
3. `envctl up chatglm-tiny-cpu` fetches them through HF_ENDPOINT into the cache, starts the
   container and runs setup; `envctl exec train` P-Tunes; `envctl exec infer` generates.

Everything the demo writes stays under .demo/ (cache, workspace with the logs and checkpoint).
`make demo-nodes` (demo/run_demo_nodes.py) uses the same pieces: build_image, tiny_repos, mirror.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
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


def clean_environ(state: Path) -> dict:
    """This process's environment without the user's ENVCTL_* settings, with envctl's cache and
    workspaces under `state`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENVCTL_")}
    env.update(ENVCTL_CACHE=str(state / "cache"), ENVCTL_WORKSPACE=str(state / "workspaces"))
    return env


def build_image(env: dict) -> str:
    """The CPU reference image on this machine's engine: its build context prepared
    (images/cpu-reference/prepare.sh, idempotent), then `envctl image chatglm-tiny-cpu`, which
    builds it only when the context changed. Returns the image ID."""
    subprocess.run(["bash", str(REPO / "images" / "cpu-reference" / "prepare.sh")], check=True, env=env)
    return envctl("image", "chatglm-tiny-cpu", env=env).stdout.strip().splitlines()[-1]


def tiny_repos(image: str, state: Path) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """The tiny model's and dataset's files (name → bytes), generated once in the image into
    state/repos (deterministic bytes)."""
    repos = state / "repos"
    if not (repos / "done").exists():
        repos.mkdir(parents=True, exist_ok=True)
        subprocess.run(["docker", "run", "--rm", "--network", "none", "-v", f"{REPO / 'demo'}:/demo:ro",
                        "-v", f"{repos}:/out", image, "python", "/demo/make_tiny_repos.py", "/out"], check=True)
        (repos / "done").write_text("")
    return files_of(repos / "model"), files_of(repos / "dataset")


@contextmanager
def mirror(model: dict[str, bytes], dataset: dict[str, bytes], env: dict) -> Iterator[HFEndpoint]:
    """A loopback HF-compatible mirror serving both repos, for as long as the block runs; `env`
    gets HF_ENDPOINT and the two revisions the manifest reads (TINY_GLM_REVISION,
    TINY_ADGEN_REVISION)."""
    with HFEndpoint() as served:
        served.add_repo("envctl/tiny-glm", files=model, revision_sha=commit_of(model))
        served.add_repo("envctl/tiny-adgen", repo_type="dataset", files=dataset, revision_sha=commit_of(dataset))
        env.update(HF_ENDPOINT=served.url, TINY_GLM_REVISION=commit_of(model), TINY_ADGEN_REVISION=commit_of(dataset))
        yield served


def main() -> None:
    started = time.perf_counter()
    env = clean_environ(STATE)

    t = step("image: prepare the build context, then `envctl image chatglm-tiny-cpu`")
    image = build_image(env)
    print(f"   ({time.perf_counter() - t:.1f} s)")

    t = step("weights and dataset: generated in the image, served by a loopback HF mirror")
    model, dataset = tiny_repos(image, STATE)
    print(f"   ({time.perf_counter() - t:.1f} s)")

    with mirror(model, dataset, env) as served:
        t = step(f"envctl up chatglm-tiny-cpu   (HF_ENDPOINT={served.url})")
        envctl("up", "chatglm-tiny-cpu", env=env)
        print(f"   ({time.perf_counter() - t:.1f} s, {served.bytes_sent} bytes from the mirror)")

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
