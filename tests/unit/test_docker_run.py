"""docker run commands read as the Docker CLI reads them (envctl/docker_run.py).

Commands are the vendors' own quick starts: vllm-ascend's (docs.vllm.ai/projects/ascend,
quick_start, v0.8.4rc1 to v0.13.0: DEVICE and IMAGE exported first, --shm-size=1g since 0.10),
MindIE's and the Ascend MinerU run scripts (--device=/dev/davinciN, the whole driver directory
mounted), the Ascend Docker Runtime's user guide (`-e ASCEND_VISIBLE_DEVICES=0` with the runtime as
the engine's default), Cambricon ModelZoo's run_docker.sh and the MLU370 tutorials' containers
(--device /dev/cambricon_dev0, --device /dev/cambricon_ctl, -v /usr/bin/cnmon, --privileged,
--shm-size '64gb', --cap-add=sys_ptrace). Flag spellings: `docker run --help` of Docker 28.2.
"""

from __future__ import annotations

import pytest

from envctl.docker_run import DockerRunError, parse_run, read_command

VLLM_ASCEND = """\
# Update DEVICE according to your device (/dev/davinci[0-7])
export DEVICE=/dev/davinci0
# Update the vllm-ascend image
export IMAGE=quay.io/ascend/vllm-ascend:v0.9.2rc1
docker run --rm \\
--name vllm-ascend \\
--shm-size=1g \\
--device $DEVICE \\
--device /dev/davinci_manager \\
--device /dev/devmm_svm \\
--device /dev/hisi_hdc \\
-v /usr/local/dcmi:/usr/local/dcmi \\
-v /usr/local/bin/npu-smi:/usr/local/bin/npu-smi \\
-v /usr/local/Ascend/driver/lib64/:/usr/local/Ascend/driver/lib64/ \\
-v /usr/local/Ascend/driver/version.info:/usr/local/Ascend/driver/version.info \\
-v /etc/ascend_install.info:/etc/ascend_install.info \\
-v /root/.cache:/root/.cache \\
-p 8000:8000 \\
-it $IMAGE bash
"""


def test_vllm_ascend_quick_start_with_its_export_lines():
    run = read_command(VLLM_ASCEND, {})
    assert run.image == "quay.io/ascend/vllm-ascend:v0.9.2rc1"
    assert run.command == ("bash",)
    assert run.values("device") == ["/dev/davinci0", "/dev/davinci_manager", "/dev/devmm_svm", "/dev/hisi_hdc"]
    assert run.values("shm-size") == ["1g"]
    assert run.values("publish") == ["8000:8000"]
    assert run.flag("rm") and run.flag("interactive") and run.flag("tty") and not run.flag("detach")
    assert run.substituted == {"DEVICE": "/dev/davinci0", "IMAGE": "quay.io/ascend/vllm-ascend:v0.9.2rc1"}


def test_variables_from_the_environment_and_defaults():
    run = read_command('docker run --device "$DEVICE" -e A=${UNSET:-x} -e B=${EMPTY-kept} -e C=${EMPTY:-used} '
                       "${IMAGE}", {"DEVICE": "/dev/davinci3", "IMAGE": "ubuntu:22.04", "EMPTY": ""})
    assert run.values("device") == ["/dev/davinci3"]
    assert run.values("env") == ["A=x", "B=", "C=used"]
    assert run.image == "ubuntu:22.04"


def test_an_unset_variable_is_an_error_naming_it():
    with pytest.raises(DockerRunError, match=r"\$IMAGE is not set") as caught:
        read_command("docker run -it $IMAGE bash", {})
    assert caught.value.exit_code == 2
    assert "export IMAGE=" in caught.value.hint


def test_home_and_tilde_stay_home_for_every_user():
    run = read_command("docker run -v ~/.cache:/root/.cache -v $HOME/data:/data -v ${HOME}/x:/x img", {"HOME": "/root"})
    assert run.values("volume") == ["${HOME}/.cache:/root/.cache", "${HOME}/data:/data", "${HOME}/x:/x"]


def test_a_credential_is_never_replaced_by_its_value():
    run = read_command("docker run -e HF_TOKEN=$HF_TOKEN img", {"HF_TOKEN": "hf_abcdef"})
    assert run.values("env") == ["HF_TOKEN=${HF_TOKEN}"]
    assert "HF_TOKEN" not in run.substituted


def test_command_substitution_is_refused_but_pwd_is_the_current_directory():
    """`-v $(pwd):/workspace` is in many quick starts: pwd prints the shell's $PWD, so it is read
    as $PWD is (`pwd -P`, which resolves links, and every other command are refused)."""
    for text in ("docker run -v $(pwd -P):/w img", "docker run -v $(hostname):/w img", "docker run -v `id -u`:/w img",
                 "docker run -e N=$((1+2)) img"):
        with pytest.raises(DockerRunError, match="command substitution"):
            read_command(text, {"PWD": "/srv/lab"})
    run = read_command("docker run -v $(pwd):/w -v \"`pwd`/my data:/d\" -v $(pwd -L)/x:/x img bash -c 'ls $(pwd)'",
                       {"PWD": "/srv/lab"})
    assert run.values("volume") == ["/srv/lab:/w", "/srv/lab/my data:/d", "/srv/lab/x:/x"]
    assert run.command == ("bash", "-c", "ls $(pwd)")  # single quotes: the container's shell runs it
    assert run.substituted == {"PWD": "/srv/lab"}  # recorded in the header, as $PWD would be
    with pytest.raises(DockerRunError, match=r"\$PWD is not set"):
        read_command("docker run -v $(pwd):/w img", {})


@pytest.mark.parametrize("text", [
    "docker run -it --rm img",
    "docker run -ti --rm=true img",
    "docker run --interactive --tty --rm img",
    "docker run --interactive=true -t --rm img",
    "sudo docker run -it --rm img",
    "docker container run -it --rm img",
])
def test_boolean_flags_in_every_spelling(text):
    run = read_command(text, {})
    assert run.flag("interactive") and run.flag("tty") and run.flag("rm")
    assert run.image == "img"


def test_false_booleans_and_last_one_wins():
    run = read_command("docker run --privileged=false -d=false --rm --rm=false img", {})
    assert not run.flag("privileged") and not run.flag("detach") and not run.flag("rm")
    with pytest.raises(DockerRunError, match='invalid argument "maybe" for "--rm"'):
        read_command("docker run --rm=maybe img", {})


@pytest.mark.parametrize("text, expected", [
    ("docker run -itd -p 8000:8000 img", ["8000:8000"]),
    ("docker run -dit -p8000:8000 img", ["8000:8000"]),
    ("docker run -itp 8000:8000 img", ["8000:8000"]),
    ("docker run -itp8000:8000 img", ["8000:8000"]),
    ("docker run -p=8000:8000 img", ["8000:8000"]),
    ("docker run --publish=8000:8000 --publish 9000:9000 img", ["8000:8000", "9000:9000"]),
])
def test_short_flag_clusters_and_attached_values(text, expected):
    run = read_command(text, {})
    assert run.values("publish") == expected
    assert run.image == "img"


def test_net_is_network_and_values_after_equals():
    run = read_command("docker run --net=host --ipc host --shm-size '64gb' --ulimit memlock=-1:-1 "
                       "--cap-add=sys_ptrace --workdir=/w -u 1000:1000 --entrypoint /bin/sh img -c 'echo hi'", {})
    assert run.values("network") == ["host"] and run.values("ipc") == ["host"]
    assert run.values("shm-size") == ["64gb"] and run.values("ulimit") == ["memlock=-1:-1"]
    assert run.values("cap-add") == ["sys_ptrace"] and run.values("workdir") == ["/w"]
    assert run.values("user") == ["1000:1000"] and run.values("entrypoint") == ["/bin/sh"]
    assert run.command == ("-c", "echo hi")


def test_options_after_the_image_belong_to_the_command():
    run = read_command("docker run -it img python -m x --device /dev/davinci0 -p 1", {})
    assert run.image == "img"
    assert run.command == ("python", "-m", "x", "--device", "/dev/davinci0", "-p", "1")
    assert run.values("device") == []


def test_double_dash_ends_the_options():
    assert parse_run(["--rm", "--", "img", "ls"]).image == "img"


@pytest.mark.parametrize("text, message", [
    ("docker run --frobnicate img", "unknown flag: --frobnicate"),
    ("docker run -itx img", "unknown shorthand flag: 'x' in -itx"),
    ("docker run --device", "flag needs an argument: --device"),
    ("docker run -it -v", "flag needs an argument: 'v' in -v"),
    ("docker run --rm -it", "names no image"),
    ("docker pull img", "expected a docker run command"),
    ("podman run img", "expected a docker run command"),
    ("", "no docker run command given"),
    ("docker run -v '/a:/b img", "cannot split it into words"),
])
def test_refusals_name_the_flag_or_the_problem(text, message):
    with pytest.raises(DockerRunError, match=message.replace("(", r"\(")) as caught:
        read_command(text, {})
    assert caught.value.exit_code == 2


def test_continuations_quotes_and_comments_as_sh_reads_them():
    text = ("docker run \\\r\n  -e 'A=it'\"'\"'s # not a comment' \\\n  -e \"B=two \\\n words\" \\\n"
            "  -e C=x#y \\\n  img  # a comment, with an apostrophe: don't\n")
    run = read_command(text, {})
    assert run.values("env") == ["A=it's # not a comment", "B=two  words", "C=x#y"]
    assert run.image == "img" and run.command == ()


def test_a_second_command_after_docker_run_is_refused_naming_its_line():
    with pytest.raises(DockerRunError, match="line 3: only one docker run command is read; 'apt-get update -y'"):
        read_command("docker run -it img bash\n# Install curl\napt-get update -y\n", {})


def test_export_lines_may_use_earlier_ones():
    run = read_command("export TAG=v0.13.0\nIMAGE=quay.io/ascend/vllm-ascend:$TAG-a3\ndocker run $IMAGE", {})
    assert run.image == "quay.io/ascend/vllm-ascend:v0.13.0-a3"


def test_quotes_and_backslashes_stop_the_replacement_as_in_sh():
    environ = {"X": 'a "b" \\c', "W": "two words", "PORT": "1"}
    run = read_command("""docker run -e "A=$X" -e B=$W -e 'C=$PORT' -e D=\\$PORT -e "E=\\$PORT" img """
                       """bash -c 'vllm serve --port $UNSET_HERE' "$W" '$(date)'""", environ)
    assert run.values("env") == ['A=a "b" \\c', "B=two words", "C=$PORT", "D=$PORT", "E=$PORT"]
    assert run.command == ("bash", "-c", "vllm serve --port $UNSET_HERE", "two words", "$(date)")
    assert run.substituted == {"X": environ["X"], "W": "two words"}


def test_a_literal_dollar_brace_is_written_as_envctls_escape():
    run = read_command("""docker run -e 'A=${X}' -e B=\\${Y} -e "C=\\${Z}" -e D=$V img bash -c 'echo ${PATH}'""",
                       {"V": "keep ${this}"})
    assert run.values("env") == ["A=$${X}", "B=$${Y}", "C=$${Z}", "D=keep $${this}"]
    assert run.command == ("bash", "-c", "echo $${PATH}")
    for text in ("docker run -e A=${X:?unset} img", "docker run -e A=${#X} img"):
        with pytest.raises(DockerRunError, match="shell expansion envctl does not read"):
            read_command(text, {"X": "1"})



def test_a_line_that_lost_its_backslash_is_said_as_such():
    """A quick start copied from a web page often loses a trailing backslash: the next line, an
    option, would be a command of its own for the shell."""
    with pytest.raises(DockerRunError) as caught:
        read_command("docker run --rm\n -v /a:/b \\\n --shm-size 1g img:1\n", {})
    assert caught.value.message == "line 2: '-v /a:/b --shm-size 1g img:1' continues the docker run command, but " \
                                   "the line before it does not end with a backslash"
    assert "end every line but the last of the command with ' \\'" in caught.value.hint
    with pytest.raises(DockerRunError, match="only one docker run command is read"):  # a second command is not
        read_command("docker run img:1\ndocker exec -it x bash\n", {})


def test_commands_joined_by_semicolons_or_ands_and_a_copied_prompt():
    """`export IMAGE=...; docker run ... $IMAGE` and `... && docker run` are run in order, as sh
    runs them; a `;` or `&&` inside quotes stays in its word; a `$ ` prompt copied from a web
    page is not part of the command."""
    run = read_command("export TAG=v1; export IMAGE=img:$TAG && docker run $IMAGE bash -c 'a; b && c' \"x;y\"", {})
    assert run.image == "img:v1" and run.command == ("bash", "-c", "a; b && c", "x;y")
    assert read_command("$ docker run --rm img:1", {}).image == "img:1"
    assert read_command("export T=2\n$ docker run img:$T", {}).image == "img:2"
    assert read_command("docker run -e A=1\\;2 img:1", {}).values("env") == ["A=1;2"]
    with pytest.raises(DockerRunError, match="only one docker run command is read; 'docker ps' follows it"):
        read_command("docker run img:1; docker ps", {})
