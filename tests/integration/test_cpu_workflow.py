"""The CPU reference workflow end to end (what `make demo` runs): a locally built image,
weights and a dataset fetched through a loopback HF mirror, setup, P-Tuning with a falling
loss, a checkpoint, and inference from it."""

import os
import re
import subprocess
import sys

from support import REPO

ENV_NAME = "envctl-chatglm-tiny-cpu"


def test_make_demo_trains_with_a_falling_loss_and_generates(tmp_path):
    state = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENVCTL_")}
    env["ENVCTL_DEMO_STATE"] = str(state)
    try:
        done = subprocess.run([sys.executable, str(REPO / "demo" / "run_demo.py")], capture_output=True, text=True,
                              env=env, timeout=1800)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        workspace = state / "workspaces" / ENV_NAME
        log = next((workspace / "logs").glob("train-*.log")).read_text()
        losses = [float(x) for x in re.findall(r"^step \d+ loss ([0-9.]+)$", log, re.M)]
        assert len(losses) >= 10, log
        assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5, f"the loss did not fall: {losses}"
        checkpoint = workspace / "output" / "ptune"
        assert any(checkpoint.glob("*.safetensors")), list(checkpoint.iterdir())
        generated = [line for line in done.stdout.splitlines() if line.startswith("generated:")]
        assert generated and len(generated[-1]) > len("generated: "), done.stdout[-2000:]
        # The demo's second, offline `up` of the set-up environment re-ran nothing (only that
        # one prints these lines; the first up created the container and ran the step).
        assert "container  envctl-chatglm-tiny-cpu: unchanged" in done.stderr
        assert "setup      0 step(s) ran, 1 unchanged" in done.stderr
    finally:
        env.update(ENVCTL_WORKSPACE=str(state / "workspaces"))
        subprocess.run([sys.executable, "-m", "envctl", "down", ENV_NAME, "--purge"], capture_output=True, env=env)
