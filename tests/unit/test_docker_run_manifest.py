"""Manifests made from vendors' docker run commands (envctl/docker_run_manifest.py), each loaded
with the real loader. Commands: see test_docker_run.py's docstring for their sources."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from envctl.docker_run import DockerRunError, read_command
from envctl.docker_run_manifest import manifest_from_run
from envctl.manifest import discovery
from envctl.manifest.loader import load_file
from test_docker_run import VLLM_ASCEND

ENVIRON = {"HOME": "/home/lab"}


def made(tmp_path: Path, text: str, name: str = "made", environ=None):
    """(loaded manifest, its text, warnings) of the command `text`."""
    run = read_command(text, environ if environ is not None else {})
    manifest_text, warnings = manifest_from_run(name, run, tmp_path)
    bundle = tmp_path / "manifests" / name
    bundle.mkdir(parents=True)
    (bundle / "manifest.yaml").write_text(manifest_text, encoding="utf-8")
    loaded = load_file(bundle / "manifest.yaml", ENVIRON, discovery.search_roots(ENVIRON, tmp_path))
    return loaded.manifest, manifest_text, warnings


def test_vllm_ascend_quick_start(tmp_path):
    manifest, text, warnings = made(tmp_path, VLLM_ASCEND, "vllm-serve")
    assert (manifest.device.kind, manifest.device.cards) == ("npu", [0])
    assert (manifest.image.ref, manifest.image.pull) == ("quay.io/ascend/vllm-ascend:v0.9.2rc1", True)
    container = manifest.container
    assert (container.name, container.shm_size) == ("vllm-ascend", "1g")
    # the driver's files and the manager nodes are envctl's own (envctl/devices/npu.py): not said twice
    assert container.mounts == ["/root/.cache:/root/.cache"]
    assert container.ports == ["8000:8000"]
    shell = manifest.entrypoints["shell"]
    assert (shell.run, shell.interactive, shell.ports) == (["bash"], True, [8000])
    assert warnings == [] and manifest.notes == []
    for left in ("--device /dev/davinci_manager", "-v /usr/local/dcmi:/usr/local/dcmi",
                 "-v /usr/local/Ascend/driver/lib64/:/usr/local/Ascend/driver/lib64/"):
        assert f"#   {left}" in text
    assert "DEVICE=/dev/davinci0" in text  # the values the export lines gave, recorded


MINDIE = """docker run -itd --privileged \\
--name mindie --ipc=host --network=host \\
--device=/dev/davinci0 --device=/dev/davinci1 --device=/dev/davinci2 --device=/dev/davinci3 \\
--device=/dev/davinci_manager --device=/dev/devmm_svm --device=/dev/hisi_hdc \\
-v /usr/local/dcmi:/usr/local/dcmi -v /usr/local/bin/npu-smi:/usr/local/bin/npu-smi \\
-v /usr/local/Ascend/driver/lib64/common:/usr/local/Ascend/driver/lib64/common \\
-v /usr/local/Ascend/driver/lib64/driver:/usr/local/Ascend/driver/lib64/driver \\
-v /etc/ascend_install.info:/etc/ascend_install.info -v /etc/localtime:/etc/localtime \\
-v /etc/vnpu.cfg:/etc/vnpu.cfg \\
-v /usr/local/Ascend/driver/version.info:/usr/local/Ascend/driver/version.info \\
swr.cn-northeast-228.ccaicc.com/ccaicc-bms-910b/mindie:1.0 /bin/bash
"""


def test_mindie_run_script_with_driver_subdirectories_and_host_network(tmp_path):
    manifest, text, _ = made(tmp_path, MINDIE)
    assert manifest.device.cards == [0, 1, 2, 3]
    c = manifest.container
    assert (c.privileged, c.ipc, c.network, c.name) == (True, "host", "host", "mindie")
    assert c.mounts == ["/etc/localtime:/etc/localtime", "/etc/vnpu.cfg:/etc/vnpu.cfg"]
    assert "inside /usr/local/Ascend/driver/lib64, which envctl mounts read-only" in text
    entry = manifest.entrypoints["shell"]
    # -itd with a bare shell only kept the container up for `docker exec -it`: the shell is
    # what the user comes back for, on a terminal (a bash without one would exit at once)
    assert entry.run == ["/bin/bash"] and entry.interactive
    assert "--detach" not in text and "`envctl exec NAME shell` opens the shell" in text


@pytest.mark.parametrize("command, interactive, detach_note", [
    ("docker run -itd img:1 bash", True, False),
    ("docker run -dit img:1 /bin/sh -l", True, False),
    ("docker run -it -d img:1 /usr/bin/zsh", True, False),
    ("docker run -it img:1 bash", True, False),
    ("docker run -itd img:1 vllm serve /models/qwen --port 8000", False, True),  # a server, in the background
    ("docker run -d img:1 python serve.py", False, True),
    ("docker run img:1 python train.py", False, False),
])
def test_a_detached_terminal_shell_is_an_interactive_entrypoint(tmp_path, command, interactive, detach_note):
    manifest, text, _ = made(tmp_path, command)
    (entry,) = manifest.entrypoints.values()
    assert entry.interactive is interactive
    assert ("--detach" in text) is detach_note


def test_whole_driver_directory_and_other_host_paths(tmp_path):
    manifest, text, _ = made(tmp_path, "docker run -it --device=/dev/davinci1 --device=/dev/davinci_manager "
                                       "-v /usr/local/Ascend/driver:/usr/local/Ascend/driver "
                                       "-v /usr/local/Ascend/add-ons/:/usr/local/Ascend/add-ons/ "
                                       "-v /usr/local/sbin/:/usr/local/sbin/ -v /data:/data:ro img:1 /bin/bash")
    assert manifest.device.cards == [1]
    assert manifest.container.mounts == ["/usr/local/Ascend/add-ons/:/usr/local/Ascend/add-ons/",
                                         "/usr/local/sbin/:/usr/local/sbin/", "/data:/data:ro"]
    assert "envctl mounts the driver's lib64, include, tools, topo and version.info read-only" in text


def test_ascend_runtime_by_its_variable(tmp_path):
    manifest, text, _ = made(tmp_path, "docker run -it -e ASCEND_VISIBLE_DEVICES=0-1 -e ASCEND_RUNTIME_OPTIONS=NODRV "
                                       "image-name:tag /bin/bash")
    assert (manifest.device.kind, manifest.device.cards, manifest.container.runtime) == ("npu", [0, 1], "ascend")
    assert manifest.container.env == {"ASCEND_RUNTIME_OPTIONS": "NODRV"}
    assert "default runtime" in text
    explicit, _, _ = made(tmp_path, "docker run --runtime ascend -e ASCEND_VISIBLE_DEVICES=3 img:1", "explicit")
    assert (explicit.device.cards, explicit.container.runtime) == ([3], "ascend")


CAMBRICON = """docker run -it \\
     --net=host \\
     --privileged=true \\
     --cap-add=sys_ptrace \\
     --shm-size="64g" \\
     -v /usr/bin/cnmon:/usr/bin/cnmon \\
     -v /data:/data \\
     --device=/dev/cambricon_dev0 \\
     --device=/dev/cambricon_ctl \\
     --device /dev/cambricon_ipcm0 \\
     --name="$MY_CONTAINER" \\
     yellow.hub.cambricon.com/pytorch/pytorch:v1.17.0-torch1.13.1-ubuntu20.04-py310 \\
     /bin/bash
"""


def test_cambricon_run_script(tmp_path):
    manifest, text, _ = made(tmp_path, CAMBRICON, environ={"MY_CONTAINER": "pytorch_py3"})
    assert (manifest.device.kind, manifest.device.cards) == ("mlu", [0])
    c = manifest.container
    assert (c.network, c.privileged, c.cap_add, c.shm_size, c.name) == ("host", True, ["sys_ptrace"], "64g", "pytorch_py3")
    assert c.mounts == ["/data:/data"]  # cnmon is envctl's own for mlu
    assert "#   -v /usr/bin/cnmon:/usr/bin/cnmon" in text and "#   --device=/dev/cambricon_ctl" in text


def test_privileged_with_the_control_node_only_names_no_card(tmp_path):
    manifest, text, _ = made(tmp_path, "docker run --shm-size '64gb' --privileged --network=host --ipc=host "
                                       "--device /dev/cambricon_ctl -it --name mt5 -w /home/pytorch_modelzoo "
                                       "yellow.hub.cambricon.com/pytorch/pytorch:v1.11.0-torch1.9-ubuntu18.04-py37 /bin/bash")
    assert (manifest.device.kind, manifest.device.cards) == ("mlu", None)
    assert "# cards: no card was named" in text
    assert manifest.container.workdir == "/home/pytorch_modelzoo"


@pytest.mark.parametrize("gpus, cards", [("all", None), ("2", 2), ('"device=0,2"', [0, 2]), ("device=1", [1]),
                                         ("count=4,capabilities=compute", 4)])
def test_gpus(tmp_path, gpus, cards):
    manifest, _, _ = made(tmp_path, f"docker run --gpus '{gpus}' --ipc=host vllm/vllm-openai:v0.6.0 --model x")
    assert (manifest.device.kind, manifest.device.cards) == ("cuda", cards)
    # the arguments went to the image's ENTRYPOINT, which envctl does not know: a note, no entrypoint
    assert manifest.entrypoints == {}
    assert any("--model x" in note and "ENTRYPOINT" in note for note in manifest.notes)


def test_server_command_env_ulimits_ports_and_user(tmp_path):
    manifest, text, warnings = made(tmp_path, (
        "docker run -d --name qwen -p 127.0.0.1:8000:8000 -p 9000-9001:9000-9001/udp "
        "-e VLLM_USE_V1=1 --env PYTHONUNBUFFERED=1 -e HF_ENDPOINT=https://hf-mirror.com "
        "--ulimit memlock=-1 --ulimit nofile=1024:65536 --ulimit stack=67108864 --user root --pid=host "
        "quay.io/ascend/vllm-ascend:v0.13.0 vllm serve Qwen/Qwen2.5-7B-Instruct --port 8000"))
    c = manifest.container
    assert c.ports == ["127.0.0.1:8000:8000", "9000:9000/udp", "9001:9001/udp"]
    assert c.env == {"VLLM_USE_V1": "1", "PYTHONUNBUFFERED": "1", "HF_ENDPOINT": "https://hf-mirror.com"}
    assert c.ulimits == {"memlock": -1, "nofile": "1024:65536", "stack": 67108864}
    assert (c.user, c.pid) == ("root", "host")
    entry = manifest.entrypoints["vllm"]
    assert entry.run == ["vllm", "serve", "Qwen/Qwen2.5-7B-Instruct", "--port", "8000"]
    assert entry.ports == [8000, 9000, 9001] and not entry.interactive
    assert manifest.device.kind == "cpu" and warnings == []


def test_entrypoint_flag_and_shell_command(tmp_path):
    manifest, _, _ = made(tmp_path, "docker run --entrypoint /bin/bash img:1 -c 'cd /w && python x.py'")
    assert manifest.entrypoints["bash"].run == ["/bin/bash", "-c", "cd /w && python x.py"]
    none, text, _ = made(tmp_path, "docker run -d img:1", "none")
    assert none.entrypoints == {} and "# entrypoints: the command gave none" in text


def test_secrets_are_passed_never_written(tmp_path):
    manifest, text, warnings = made(tmp_path, "docker run -e HF_TOKEN=hf_abcdefgh1234 -e OPENAI_API_KEY "
                                              "-e HUB_PASSWORD=$HUB_PASSWORD -e PLAIN=1 img:1",
                                    environ={"HUB_PASSWORD": "pw-secret-value"})
    assert manifest.container.pass_env == ["HF_TOKEN", "OPENAI_API_KEY", "HUB_PASSWORD"]
    assert manifest.container.env == {"PLAIN": "1"}
    assert "hf_abcdefgh1234" not in text and "pw-secret-value" not in text
    assert "-e HF_TOKEN=***" in text
    assert any("HF_TOKEN" in w and "pass_env" in w for w in warnings)


def test_a_secret_the_shell_would_expand_is_refused_one_left_to_the_container_is_kept(tmp_path):
    for text in ("docker run img:1 huggingface-cli login --token $HF_TOKEN",
                 'docker run -v "/data/${DB_PASSWORD}:/d" img:1', "docker run -e URL=https://u:$FTP_PASSWORD@h img:1"):
        with pytest.raises(DockerRunError, match=r"uses \$\{(HF_TOKEN|DB_PASSWORD|FTP_PASSWORD)\}") as caught:
            made(tmp_path, text, environ={"HF_TOKEN": "hf_x", "DB_PASSWORD": "pw", "FTP_PASSWORD": "pw"})
        assert "hf_x" not in str(caught.value) and "pw" not in str(caught.value)
    manifest, text, _ = made(tmp_path, "docker run -e HF_TOKEN img:1 bash -c 'login --token $HF_TOKEN ${HF_TOKEN}'",
                             "kept", environ={"HF_TOKEN": "hf_x"})
    # the loader leaves $NAME to the container's shell and writes $${ as ${: the command the container runs
    assert manifest.entrypoints["bash"].run == ["bash", "-c", "login --token $HF_TOKEN ${HF_TOKEN}"]
    assert manifest.container.pass_env == ["HF_TOKEN"] and "hf_x" not in text


def test_literal_dollar_braces_reach_the_container_as_written(tmp_path):
    manifest, _, _ = made(tmp_path, "docker run -e 'PS=${X}' img:1 bash -c 'echo ${PATH}'")
    assert manifest.container.env == {"PS": "${X}"}
    assert manifest.entrypoints["bash"].run == ["bash", "-c", "echo ${PATH}"]


def test_env_file_names_are_passed(tmp_path):
    (tmp_path / "vllm.env").write_text("# settings\nHF_ENDPOINT=https://hf-mirror.com\nHF_TOKEN=x\n\nVLLM_LOGGING_LEVEL\n")
    manifest, _, _ = made(tmp_path, "docker run --env-file ./vllm.env img:1")
    assert manifest.container.env_file == str(tmp_path / "vllm.env")
    assert manifest.container.pass_env == ["HF_ENDPOINT", "HF_TOKEN", "VLLM_LOGGING_LEVEL"]
    missing, _, warnings = made(tmp_path, "docker run --env-file /nonexistent/x.env img:1", "missing")
    assert missing.container.env_file == "/nonexistent/x.env"
    assert any("cannot read /nonexistent/x.env" in w for w in warnings)


def test_what_envctl_cannot_express_is_a_note_and_a_warning(tmp_path):
    manifest, _, warnings = made(tmp_path, (
        "docker run --cap-drop NET_RAW --add-host db:10.0.0.2 --restart unless-stopped -P --tmpfs /run "
        "-v models:/models -v /anon --mount type=volume,source=v,target=/v "
        "--mount type=bind,source=/srv/data,target=/data,readonly,bind-propagation=rslave "
        "-v /logs:/logs:z --security-opt seccomp=unconfined --device /dev/infiniband/uverbs0 -p 7000 img:1"))
    expected = ["--cap-drop NET_RAW", "--add-host db:10.0.0.2", "--restart unless-stopped", "-P",
                "--tmpfs /run", "-v models:/models", "-v /anon", "--mount type=volume,source=v,target=/v",
                "bind-propagation", "-v /logs:/logs:z", "--security-opt seccomp=unconfined",
                "--device /dev/infiniband/uverbs0", "-p 7000"]
    for flag in expected:
        assert any(flag in note for note in manifest.notes), flag
    assert manifest.notes == warnings
    assert manifest.container.mounts == ["/srv/data:/data:ro", "/logs:/logs"]
    assert manifest.container.ports == ["7000"]


def test_published_ports_under_host_network_are_a_note(tmp_path):
    manifest, _, warnings = made(tmp_path, "docker run --net=host -p 8000:8000 img:1 vllm serve m")
    assert manifest.container.ports == [] and manifest.container.network == "host"
    assert any("discards published ports" in w for w in warnings)
    assert manifest.entrypoints["vllm"].ports == [8000]


def test_relative_host_paths_are_taken_from_the_current_directory(tmp_path):
    manifest, _, _ = made(tmp_path, "docker run -v ./work:/work -v ../up:/up img:1")
    assert manifest.container.mounts == [f"{tmp_path}/work:/work", f"{tmp_path.parent}/up:/up"]


@pytest.mark.parametrize("text, message", [
    ("docker run --device /dev/davinci0 --device /dev/cambricon_dev0 img:1", "more than one family"),
    ("docker run --shm-size 64x img:1", "--shm-size 64x"),
    ("docker run --ipc sometimes img:1", "--ipc sometimes"),
    ("docker run --ulimit memlock img:1", "name=soft"),
    ("docker run --ulimit as=1 img:1", "'as' is not a ulimit"),
    ("docker run --cap-add SYS_PTRAC img:1", "not a Linux capability"),
    ("docker run -w relative img:1", "absolute"),
    ("docker run '<image-name>:<image-tag>' /bin/bash", "placeholder"),
    ("docker run quay.io/x/y@sha256:" + "a" * 64, "names a digest but no tag"),
    ("docker run --gpus maybe img:1", "not a GPU request"),
    ("docker run --help", "nothing to make a manifest of"),
])
def test_values_docker_refuses_too(tmp_path, text, message):
    with pytest.raises(DockerRunError) as caught:
        made(tmp_path, text)
    assert message in str(caught.value) + (caught.value.hint or "")


def test_no_tag_is_latest(tmp_path):
    manifest, text, _ = made(tmp_path, "docker run -it ubuntu bash")
    assert manifest.image.ref == "ubuntu:latest" and "Docker took latest" in text


def test_text_reads_back_with_awkward_values(tmp_path):
    manifest, text, _ = made(tmp_path, "docker run -e 'A=x: y # z' -e 'B=- [1]' -e 'C=yes' -e 'D=' -e 'E=\"q\"' "
                                       "-e 'F=中文' img:1 echo '{a}' '#' ': '")
    assert manifest.container.env == {"A": "x: y # z", "B": "- [1]", "C": "yes", "D": "", "E": '"q"', "F": "中文"}
    assert manifest.entrypoints["echo"].run == ["echo", "{a}", "#", ": "]
    assert yaml.safe_load(text)["container"]["env"]["C"] == "yes"


def test_device_permissions_and_a_node_at_another_path(tmp_path):
    manifest, _, warnings = made(tmp_path, "docker run --device=/dev/davinci0:rwm --device /dev/davinci1:/dev/davinci0:rw "
                                           "--device=/dev/davinci_manager:/dev/davinci_manager:rwm --pull never img:1")
    assert manifest.device.cards == [0, 1]
    assert [w for w in warnings if "davinci" in w] == [
        "docker run --device /dev/davinci1:/dev/davinci0:rw: envctl passes a card's node at its own path "
        "(/dev/davinci1), not at /dev/davinci0"]
    assert any("--pull never" in w for w in warnings)


def test_nvidia_runtime(tmp_path):
    manifest, _, _ = made(tmp_path, "docker run --runtime=nvidia -e NVIDIA_VISIBLE_DEVICES=1,3 img:1")
    assert (manifest.device.kind, manifest.device.cards, manifest.container.runtime) == ("cuda", [1, 3], "nvidia")
    every, text, _ = made(tmp_path, "docker run --runtime nvidia img:1", "every")
    assert (every.device.kind, every.device.cards) == ("cuda", None) and "# cards: no card was named" in text


def test_a_visibility_variable_envctl_sets_alike_is_no_note(tmp_path):
    same, text, warnings = made(tmp_path, "docker run --device /dev/cambricon_dev0 --device /dev/cambricon_dev1 "
                                          "-e MLU_VISIBLE_DEVICES=0,1 img:1")
    assert warnings == [] and "#   -e MLU_VISIBLE_DEVICES=0,1" in text and same.container.env == {}
    narrower, _, warnings = made(tmp_path, "docker run --device /dev/davinci0 --device /dev/davinci1 "
                                           "-e ASCEND_RT_VISIBLE_DEVICES=1 img:1", "narrower")
    assert narrower.container.env == {}
    assert [w for w in warnings if "ASCEND_RT_VISIBLE_DEVICES" in w and "device.cards" in w]



def test_a_bind_mount_docker_would_refuse_is_said_as_such(tmp_path):
    """--mount type=bind: its source is a host path, never a volume's name; one without a source
    or target, or with a source that is not absolute (`source=~/x`: no shell expands that ~),
    is a note saying why Docker refuses it, not "a named volume" or "envctl mounts host paths only"."""
    manifest, _, warnings = made(tmp_path, "docker run --mount type=bind,source=~/x,target=/x "
                                           "--mount type=bind,source=data,target=/d --mount type=bind,target=/nosrc "
                                           "--mount type=bind,src=/a --mount type=bind,src=/ok,dst=/ok,readonly img:1")
    assert manifest.container.mounts == ["/ok:/ok:ro"]
    assert warnings == [
        "docker run --mount type=bind,source=~/x,target=/x: not in the manifest (the bind source '~/x' is not an "
        "absolute path, which Docker refuses (the shell expands no ~ inside --mount); write the host path)",
        "docker run --mount type=bind,source=data,target=/d: not in the manifest (the bind source 'data' is not an "
        "absolute path, which Docker refuses; write the host path)",
        "docker run --mount type=bind,target=/nosrc: not in the manifest (a bind mount without a source, which Docker "
        "refuses too)",
        "docker run --mount type=bind,src=/a: not in the manifest (a bind mount without a target, which Docker "
        "refuses too)"]


def test_an_env_file_in_the_home_directory_stays_there_for_every_user(tmp_path, monkeypatch):
    """`--env-file ~/x.env` (or $HOME/x.env) is envctl's ${HOME}/x.env, read here from this
    user's home for the names to pass; not a path relative to the current directory."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "serve.env").write_text("HF_TOKEN=hf_abcdefgh\nLOG_LEVEL=debug\n")
    monkeypatch.setenv("HOME", str(home))
    for written in ("~/serve.env", "$HOME/serve.env"):
        manifest, text, warnings = made(tmp_path / written[0], f"docker run --env-file {written} img:1",
                                        environ={"HOME": str(home)})
        assert manifest.container.env_file == f"{ENVIRON['HOME']}/serve.env"  # each user's ${HOME} when loaded
        assert "env_file: \"${HOME}/serve.env\"" in text
        assert manifest.container.pass_env == ["HF_TOKEN", "LOG_LEVEL"] and warnings == []
        assert "hf_abcdefgh" not in text
