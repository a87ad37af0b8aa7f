"""The wheel carries the shipped manifests, profiles and image contexts, and finds them when
installed (not only from a source checkout)."""

import os
import subprocess
import sys

from support import REPO


def test_installed_wheel_finds_its_shipped_manifests_and_images(tmp_path):
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(REPO)],
                   check=True, capture_output=True, timeout=300)
    wheel = next(wheels.glob("envctl-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENVCTL_")}
    env.update(PYTHONPATH=str(target), HOME=str(tmp_path / "home"))
    run = lambda *args: subprocess.run([sys.executable, "-m", "envctl", *args], capture_output=True, text=True,  # noqa: E731
                                       env=env, cwd=tmp_path, timeout=60)
    located = run("show", "chatglm-tiny-cpu")
    assert located.returncode == 0, located.stderr
    assert located.stdout.startswith(f"# resolved from {target}/envctl/shipped_manifests/chatglm-tiny-cpu/manifest.yaml")
    assert run("validate").returncode == 0
    plan = run("plan", "chatglm-tiny-cpu")
    assert f"build context {target}/envctl/shipped_images/cpu-reference" in plan.stdout
    assert "chatglm3-mlu" in run("list").stdout
