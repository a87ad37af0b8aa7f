"""An export of a pulled image (`image.pull`) names the image and no tarball: the README's
prerequisites said "the manifest's tarball comes from REGISTRY/REPO@sha256:..." when the plan's
registry source was taken for a tarball's."""

from __future__ import annotations

import os
import subprocess
import sys

MANIFEST = """\
name: pulled-export
description: an export of a pulled image
device: {kind: cpu}
image:
  ref: quay.io/ascend/vllm-ascend:v0.7.3@sha256:%s
  pull: true
entrypoints:
  train:
    run: python train.py
    nodes: {launcher: none}
""" % ("ab" * 32)


def test_a_pulled_image_is_exported_without_a_tarball(tmp_path):
    (tmp_path / "m.yaml").write_text(MANIFEST)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ENVCTL_")}
    environ.update(DOCKER_HOST="unix:///nonexistent/docker.sock", HOME=str(tmp_path), ENVCTL_CONFIG=str(tmp_path / "none.yaml"))
    (tmp_path / "none.yaml").write_text("{}\n")
    done = subprocess.run([sys.executable, "-m", "envctl", "export", str(tmp_path / "m.yaml"), "--entrypoint", "train",
                           "--nodes", "2", "--format", "k8s-job", "-o", str(tmp_path / "out")],
                          capture_output=True, text=True, env=environ, timeout=120)
    assert done.returncode == 0, done.stderr
    readme = (tmp_path / "out" / "README.md").read_text()
    assert ("the image quay.io/ascend/vllm-ascend:v0.7.3@sha256:" + "ab" * 32 + " pulled by each node's container "
            "runtime (imagePullPolicy: IfNotPresent") in readme
    assert "tarball" not in readme and "envctl save" not in readme and "imagePullPolicy: Never" not in readme
