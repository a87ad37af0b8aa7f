"""plan --nodes never shows a secret: a value the manifest took from a secret-looking variable
(`${HF_TOKEN}` in `nodes.run` or a param) is replaced in every node's command, in the text and
in --json, as the one-host plan replaces it; a `--set` of a secret-looking parameter is shown
without its value in the exec line the plan stands for."""

from __future__ import annotations

import json

from support import IMAGE
from test_remote_nodes import tarball  # noqa: F401 (a fixture)

TOKEN = "hf_plannodesNeverShowsThis0123456789"
BODY = """\
device: {{kind: cpu}}
image: {{ref: {image}, tarball: {{source: {tarball}}}}}
container: {{network: host}}
entrypoints:
  pull:
    run: echo one node
    params: {{hub_token: "${{HF_TOKEN}}", lr: "1e-4"}}
    nodes:
      launcher: none
      run: |
        echo "fetching with ${{HF_TOKEN}} at $LR"
"""


def test_plan_nodes_shows_no_secret(world, lab, tarball):  # noqa: F811
    manifest = world.write(BODY.format(image=IMAGE, tarball=tarball))
    env = world.environ(HF_TOKEN=TOKEN)
    for host in ("lab1", "lab2"):
        up = world.run("up", str(manifest), "--host", host, env=env)
        assert up.returncode == 0, up.stderr
    for extra in ((), ("--json",)):
        done = world.run("plan", str(manifest), "--nodes", "lab1,lab2", "--entrypoint", "pull", "--set",
                         "hub_token=hf_givenOnTheCommandLine42", *extra, env=env)
        said = done.stdout + done.stderr
        assert done.returncode == 0, said
        assert TOKEN not in said and "hf_givenOnTheCommandLine42" not in said, said
        assert "fetching with ***" in said  # the command itself is shown, the value replaced
    document = json.loads(done.stdout)
    assert [p["rank"] for p in document["plan"]] == [0, 1]
