"""The `shell` export of NPU and MLU environments carries the cards as `envctl up` passes them
(envctl.devices.npu, envctl.devices.mlu): each card's node and the vendor's control nodes as
--device, checked on the server (exit 5 when one is missing, before anything is loaded or
started), the nodes `up` adds when present and the driver's host paths read-only only where the
server has them; with the Ascend runtime, ASCEND_VISIBLE_DEVICES instead. CUDA stays refused."""

import os
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from envctl.devices import npu
from envctl.errors import EnvctlError
from envctl.export import formats
from envctl.export.files import render
from envctl.export.model import build_export
from envctl.manifest.loader import load

CASES = {  # reference, entrypoint, required nodes, nodes passed when present, a driver path
    "npu": ("chatglm2-npu", "finetune", [f"/dev/davinci{c}" for c in range(8)] + list(npu.MANAGER_NODES),
            ["/dev/dvpp_cmdlist"], "/usr/local/Ascend/driver/lib64"),
    "mlu": ("chatglm3-mlu", "train", ["/dev/cambricon_ctl", "/dev/cambricon_dev0", "/dev/cambricon_dev1"],
            ["/dev/cambricon_ipcm0", "/dev/commu0", "/dev/cambricon_ipcm1", "/dev/commu1"], "/usr/bin/cnmon"),
}


def _scripts(reference, entrypoint, env, **kwargs) -> dict[str, str]:
    export = build_export(load(reference, environ=env), entrypoint, 2, **kwargs)
    return render(export, formats.get("shell"))


@pytest.mark.parametrize("kind", sorted(CASES))
def test_the_node_scripts_pass_the_cards_control_nodes_and_present_driver_paths(kind, clean_env, tmp_path):
    reference, entrypoint, required, optional, driver = CASES[kind]
    files = _scripts(reference, entrypoint, dict(clean_env))
    for name in ("node-0.sh", "node-1.sh"):
        text = files[name]
        assert f"for envctl_node in {' '.join(required)}; do" in text
        assert f"for envctl_node in {' '.join(optional)}; do" in text
        assert f"if [ -e {driver} ]; then set -- \"$@\" -v {driver}:{driver}:ro; fi" in text
        assert f"-v {driver}:" not in text.split("exec docker run")[1]  # only where the server has it
        assert '    "$@" \\\n' in text and '-e ENVCTL_EXPORT_MASTER="$envctl_master"' in text
        # the device check comes before the image is loaded or anything is written on the server
        assert text.index("device node $envctl_node is missing") < text.index("docker image inspect")
        path = tmp_path / name
        path.write_text(text)
        for shell in ("sh", "bash"):
            assert subprocess.run([shell, "-n", str(path)]).returncode == 0, shell


def test_cards_chosen_at_export_and_the_ascend_runtime(clean_env):
    files = _scripts("chatglm2-npu", "finetune", dict(clean_env), cards=2)
    assert "for envctl_node in /dev/davinci0 /dev/davinci1 /dev/davinci_manager" in files["node-0.sh"]
    assert "/dev/davinci2" not in files["node-0.sh"]
    export = build_export(load("chatglm2-npu", environ=dict(clean_env)), "finetune", 2, cards=4)
    text = render(replace(export, runtime="ascend"), formats.get("shell"))["node-1.sh"]
    assert "set -- -e ASCEND_VISIBLE_DEVICES=0,1,2,3" in text and "/dev/davinci0" not in text
    assert "--runtime ascend" in text


def test_cuda_is_still_refused_with_exit_2(clean_env):
    export = build_export(load("chatglm3-mlu", environ=dict(clean_env)), "train", 2)
    with pytest.raises(EnvctlError) as refused:
        render(replace(export, device_kind="cuda"), formats.get("shell"))
    assert refused.value.exit_code == 2 and "does not pass cuda cards" in str(refused.value)


@pytest.mark.parametrize("kind", sorted(CASES))
def test_a_server_without_the_device_nodes_stops_with_exit_5_before_starting_anything(kind, clean_env, tmp_path):
    """Run for real on this machine, which has no NPU or MLU: the first missing node is named
    and nothing is loaded or written (ENVCTL_EXPORT_DIR stays absent)."""
    reference, entrypoint, required, _optional, _driver = CASES[kind]
    assert not Path(required[0]).exists(), f"this machine has {required[0]}: the test needs one without it"
    files = _scripts(reference, entrypoint, dict(clean_env))
    script = tmp_path / "node-1.sh"
    script.write_text(files["node-1.sh"])
    env = {**os.environ, "ENVCTL_EXPORT_DIR": str(tmp_path / "written")}
    done = subprocess.run(["sh", str(script), "192.0.2.1"], capture_output=True, text=True, env=env)
    assert done.returncode == 5, done.stderr
    assert f"device node {required[0]} is missing" in done.stderr, done.stderr
    assert not (tmp_path / "written").exists()


SIMULATE = """\
set -e
sim=$1; script=$2; tools=$3
# the docker CLI stays reachable from a directory of its own while /usr/local is the simulated host's
touch "$tools/docker" && mount --bind "$(command -v docker)" "$tools/docker"
mount -t tmpfs none /dev && mknod -m 666 /dev/null c 1 3
for node in "$sim"/dev/*; do mknod -m 666 "/dev/${node##*/}" c 1 3; done
mount --bind "$sim/usr/local" /usr/local
PATH="$tools:$PATH" exec sh -x "$script" 192.0.2.1
"""


@pytest.mark.parametrize("kind,missing", [("npu", None), ("npu", "hisi_hdc"), ("npu", "davinci1"), ("mlu", None),
                                          ("mlu", "cambricon_ctl")])
def test_on_a_simulated_host_the_script_takes_the_nodes_and_driver_paths_it_has(kind, missing, clean_env, tmp_path):
    """A simulated server (tests/hostsim.py: real character nodes made with mknod, the driver's
    files) in a mount namespace of its own (/dev and /usr/local replaced there only): the
    script's trace (sh -x) shows the --device and -v options it built; it then stops at the image
    (exit 5, none here). With a required node removed it stops naming that node."""
    import hostsim

    sim = tmp_path / "host"
    if kind == "npu":
        hostsim.npu_host(sim, cards=8)
    else:
        hostsim.mlu_host(sim, cards=2, ipcm=True, commu=False)
        (sim / "usr/local").mkdir(parents=True)  # the MLU driver lives outside /usr/local: an empty one
    if missing:
        (sim / "dev" / missing).unlink()
    reference, entrypoint, required, _optional, _driver = CASES[kind]
    script = tmp_path / "node-1.sh"
    files = _scripts(reference, entrypoint, dict(clean_env), image="envctl-test/absent-image:none")
    script.write_text(files["node-1.sh"])
    (tmp_path / "tools").mkdir()
    env = {**os.environ, "ENVCTL_EXPORT_DIR": str(tmp_path / "written")}
    env.pop("ENVCTL_IMAGE_TARBALL", None)
    done = subprocess.run(["unshare", "-m", "sh", "-c", SIMULATE, "sh", str(sim), str(script), str(tmp_path / "tools")],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 5, done.stderr
    if missing:
        assert f"device node /dev/{missing} is missing" in done.stderr, done.stderr
        return
    assert "has no image envctl-test/absent-image:none" in done.stderr, done.stderr
    built = [line for line in done.stderr.splitlines() if line.startswith("+ set -- ")][-1]
    for node in required:
        assert f"--device {node}" in built, built
    if kind == "npu":
        assert "--device /dev/dvpp_cmdlist" not in built  # the simulated host has none
        assert "-v /usr/local/Ascend/driver/lib64:/usr/local/Ascend/driver/lib64:ro" in built, built
        assert "-v /usr/local/dcmi:/usr/local/dcmi:ro" in built
        assert "/usr/local/Ascend/driver/topo" not in built  # absent there: not mounted
    else:
        assert "--device /dev/cambricon_ipcm0 --device /dev/cambricon_ipcm1" in built and "commu" not in built, built
        assert not Path("/usr/bin/cnmon").exists(), "this machine has /usr/bin/cnmon: the test needs one without it"
        assert "-v /usr/bin/cnmon" not in built  # /usr/bin is not simulated: absent here, so not mounted
