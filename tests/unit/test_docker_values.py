"""Docker's value formats (envctl.manifest.docker_values) and the create arguments built from
them. The forms and refusals were checked against Docker 20.10's engine, CLI and docker-py 7;
tests/integration/test_docker_values.py hands them to a real engine."""

import subprocess
import sys

import pytest

from envctl.containers import ContainerSpec
from envctl.manifest import docker_values as dv
from envctl.manifest import loader
from envctl import plan
from support import REPO

GIB = 1 << 30


@pytest.mark.parametrize("written, size", [
    ("64g", 64 * GIB), ("64G", 64 * GIB), ("64gb", 64 * GIB), ("64Gi", 64 * GIB), ("64GiB", 64 * GIB), ("64 g", 64 * GIB),
    ("1.5g", 3 * GIB // 2), ("512m", 512 << 20), ("1t", 1 << 40), ("100", 100), ("100b", 100), (4096, 4096),
])
def test_sizes_read_as_the_docker_cli_reads_them(written, size):
    assert dv.size_bytes(written) == size


@pytest.mark.parametrize("written", ["64x", "64  g", "g", "", "-1g", "1.2.3g", "0", 0, -5, "0.1b"])
def test_sizes_docker_refuses_are_refused(written):
    with pytest.raises(ValueError):
        dv.size_bytes(written)


def test_sizes_are_written_for_every_docker_cli_and_docker_py():
    assert [dv.size_text(dv.size_bytes(w)) for w in ("64Gi", "1.5g", "4k", "100")] == ["64g", "1536m", "4k", "100"]


@pytest.mark.parametrize("written, mapping", [
    ("8501", (None, 8501, 8501, "tcp")), (8501, (None, 8501, 8501, "tcp")), ("8080:80", (None, 8080, 80, "tcp")),
    ("127.0.0.1:8080:80/udp", ("127.0.0.1", 8080, 80, "udp")), ("[::1]:8080:80", ("::1", 8080, 80, "tcp")),
    ("9000/sctp", (None, 9000, 9000, "sctp")),
])
def test_port_mappings(written, mapping):
    parsed = dv.port_mapping(written)
    assert (parsed.host_ip, parsed.host_port, parsed.container_port, parsed.protocol) == mapping


@pytest.mark.parametrize("written, message", [
    ("0:80", "the host port must be a number from 1 to 65535"), ("80:70000", "the container port must be"),
    ("8000-8010:8000-8010", "port ranges are not taken"), ("999.1.1.1:80:80", "'999.1.1.1' is not an IP address"),
    ("80/foo", "the protocol is tcp, udp or sctp"), ("1:2:3:4", "is not a port mapping"), ("[::1]80", "is not a port mapping"),
])
def test_port_mappings_docker_refuses(written, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        dv.port_mapping(written)


@pytest.mark.parametrize("value, limits", [(65536, (65536, 65536)), (-1, (-1, -1)), ("1024:2048", (1024, 2048)),
                                           ("1024:-1", (1024, -1)), ("-1:-1", (-1, -1))])
def test_ulimits(value, limits):
    assert dv.ulimit("nofile", value) == limits


@pytest.mark.parametrize("name, value", [("as", 1), ("NOFILE", 1), ("foo", 1), ("nofile", "10:1"), ("nofile", "-1:10"),
                                         ("nofile", -5), ("nofile", "1:2:3"), ("nofile", "lots")])
def test_ulimits_docker_or_runc_refuses(name, value):
    with pytest.raises(ValueError):
        dv.ulimit(name, value)


@pytest.mark.parametrize("name", ["SYS_PTRACE", "sys_ptrace", "CAP_IPC_LOCK", "cap_net_admin", "ALL", "BPF"])
def test_capabilities(name):
    assert dv.capability(name) == name


@pytest.mark.parametrize("name", ["FOO", "CAP_", "SYS-PTRACE", ""])
def test_unknown_capabilities(name):
    with pytest.raises(ValueError):
        dv.capability(name)


@pytest.mark.parametrize("check, good, bad", [
    (dv.ipc_mode, ["host", "private", "shareable", "none", "container:db"], ["hostt", "container:", "container:a b", "ns:/x"]),
    (dv.pid_mode, ["host", "container:db"], ["private", "foo", "container:"]),
    (dv.network_mode, ["host", "bridge", "none", "default", "my-net", "container:db"], ["bad name", "container:", "-x"]),
    (dv.container_name, ["ab", "envctl-x.y_z"], ["a", "-ab", "a b", "a/b"]),
    (dv.user, ["root", "1000", "1000:1000", "app:staff"], ["a:b:c", "a b", ":x", ""]),
    (dv.runtime, ["nvidia", "ascend", "io.containerd.runc.v2"], ["a b", ""]),
    (dv.image_reference, ["pytorch/pytorch:2.1.0", "localhost:5000/a/b@sha256:" + "a" * 64, "Registry.Example.com/x/y:1",
                          "yellow.hub.cambricon.com/pytorch/pytorch:v1.17.0-torch1.13.1-ubuntu20.04-py310", "[::1]:5000/x:1"],
     ["PyTorch:1", "a b", "x:" + "t" * 129, "x:", "x@sha256:abc", "x//y", "-x"]),
])
def test_modes_names_and_references(check, good, bad):
    for value in good:
        assert check(value) == value
    for value in bad:
        with pytest.raises(ValueError):
            check(value)


def test_api_arguments_are_what_docker_py_takes():
    spec = ContainerSpec(name="envctl-x", image="x:1", manifest="x", variant=None, cards=(), shm_size="64Gi",
                         ulimits={"nofile": "1024:2048", "memlock": -1}, ports=("8501", "127.0.0.1:8080:80/udp"))
    kwargs = spec.api_kwargs()
    assert kwargs["shm_size"] == 64 * GIB
    assert kwargs["ports"] == {"8501/tcp": 8501, "80/udp": ("127.0.0.1", 8080)}
    assert [(u.name, u.soft, u.hard) for u in kwargs["ulimits"]] == [("nofile", 1024, 2048), ("memlock", -1, -1)]
    from docker.types import HostConfig

    host = HostConfig(version="1.41", shm_size=kwargs["shm_size"], port_bindings=kwargs["ports"], ulimits=kwargs["ulimits"])
    assert host["ShmSize"] == 64 * GIB


def test_the_shown_docker_create_line_uses_forms_every_cli_takes():
    spec = ContainerSpec(name="envctl-x", image="x:1", manifest="x", variant=None, cards=(), shm_size="64Gi",
                         ports=("8501", "[::1]:8080:80"))
    args = spec.cli_args()
    assert args[args.index("--shm-size") + 1] == "64g"
    assert [args[i + 1] for i, a in enumerate(args) if a == "--publish"] == ["8501:8501", "[::1]:8080:80"]


def test_the_loader_knows_the_workspace_mount_point_the_planner_uses():
    assert loader.WORKSPACE_TARGET == plan.WORKSPACE_TARGET


def test_cli_validate_refuses_each_value_docker_refuses_at_its_line(clean_env):
    broken = REPO / "tests" / "fixtures" / "broken" / "docker_values.yaml"
    done = subprocess.run([sys.executable, "-m", "envctl", "validate", str(broken)], capture_output=True, text=True,
                          env=dict(clean_env), timeout=60)
    assert done.returncode == 3 and "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert f"error: {broken}:14:13: container.shm_size: '1Gx' is not a size (write e.g. 64g, 64Gi, 512m or a number of bytes)" in lines
    assert f"error: {broken}:27:19: container.ports[1]: '8000-8010:8000-8010': port ranges are not taken; write one entry per port" in lines
    expected = (broken.parent / "expected" / "docker_values.txt").read_text().replace("{dir}", str(broken.parent))
    assert {f"error: {line}" for line in expected.splitlines()} <= set(lines)  # and the variant Big's shm_size:
    assert f"error: {broken}:7:31: container.shm_size: '64x' is not a size (write e.g. 64g, 64Gi, 512m or a number of bytes)" in lines


# --- values that look well formed but that Docker refuses --------------------------------------
# The engine reads sizes and limits as Go int64s: a larger number is refused at create ("json:
# cannot unmarshal number 99999999999999999999 into Go struct field HostConfig.HostConfig.ShmSize
# of type int64", Docker 20.10). Digests are go-digest's: sha256/sha384/sha512 in lowercase hex
# of 64/96/128 digits ("invalid checksum digest length", "invalid checksum digest format").

INT64_MAX = (1 << 63) - 1


def test_sizes_and_limits_up_to_int64_are_taken_and_beyond_it_refused():
    assert dv.size_bytes(INT64_MAX) == INT64_MAX and dv.ulimit("stack", INT64_MAX) == (INT64_MAX, INT64_MAX)
    assert dv.ulimit("memlock", f"1:{INT64_MAX}") == (1, INT64_MAX)
    for refused in (INT64_MAX + 1, 10 ** 20):
        with pytest.raises(ValueError, match="larger than Docker can hold"):
            dv.size_bytes(refused)
        with pytest.raises(ValueError, match="larger than Docker can hold"):
            dv.ulimit("nofile", refused)
        with pytest.raises(ValueError, match="larger than Docker can hold"):
            dv.ulimit("nofile", f"1024:{refused}")
    with pytest.raises(ValueError, match="larger than Docker can hold"):
        dv.size_bytes("8388608t")  # 2**63 bytes


def test_composes_soft_hard_mapping_is_answered_with_dockers_form():
    with pytest.raises(ValueError, match='write "1024:65536" \\(soft:hard\\)'):
        dv.ulimit("nofile", {"soft": 1024, "hard": 65536})
    with pytest.raises(ValueError, match="is not a limit"):
        dv.ulimit("nofile", {"low": 1})


@pytest.mark.parametrize("digest, message", [
    ("sha256:" + "a" * 32, "a sha256 digest is 64 lowercase hex digits (this one has 32)"),
    ("sha256:" + "A" * 64, "a sha256 digest is 64 lowercase hex digits (this one has capitals)"),
    ("sha512:" + "a" * 64, "a sha512 digest is 128 lowercase hex digits (this one has 64)"),
    ("md5:" + "a" * 32, "'md5' is not a digest algorithm Docker takes (sha256, sha384, sha512)"),
])
def test_image_digests_go_digest_refuses(digest, message):
    with pytest.raises(ValueError) as caught:
        dv.image_reference(f"python:3.11@{digest}")
    assert str(caught.value).endswith(message)


@pytest.mark.parametrize("ref", ["QA/ubuntu:22.04", "Ascendai/cann:8.0", "ASCENDAI/cann", "Library/ubuntu@sha256:" + "a" * 64])
def test_capitals_alone_make_no_registry_host(ref):
    """A first component with capitals but no '.', ':PORT' or localhost: Docker 20.10 refuses it
    ("repository name must be lowercase"), Docker 28 looks up a host of that name; neither pulls."""
    with pytest.raises(ValueError) as caught:
        dv.image_reference(ref)
    assert "Docker needs the repository name in lowercase" in str(caught.value) and "no registry host" in str(caught.value)


@pytest.mark.parametrize("ref", ["Quay.io/ascend/x:1", "LOCALHOST:5000/a/b:1", "Registry.Example.com/x/y:1", "localhost/a:1"])
def test_a_registry_host_may_have_capitals(ref):
    assert dv.image_reference(ref) == ref


@pytest.mark.parametrize("digest", ["sha256:" + "a" * 64, "sha384:" + "b" * 96, "sha512:" + "c" * 128])
def test_image_digests_go_digest_takes(digest):
    assert dv.image_reference(f"python@{digest}") == f"python@{digest}"


def test_cli_validate_refuses_every_variant_docker_would_refuse_at_its_line(clean_env):
    broken = REPO / "tests" / "fixtures" / "broken" / "docker_limits.yaml"
    done = subprocess.run([sys.executable, "-m", "envctl", "validate", str(broken)], capture_output=True, text=True,
                          env=dict(clean_env), timeout=60)
    assert done.returncode == 3 and "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert f"error: {broken}:12:10: container.ports: ports cannot be published with network 'host': the container uses " \
           "the host's ports; remove ports or the network mode" in lines
    assert f"error: {broken}:24:49: container.ports: ports cannot be published with network 'container:db': the container " \
           "uses that container's ports; remove ports or the network mode" in lines
    assert f"error: {broken}:22:18: image.ref: 'python@md5:0123456789abcdef0123456789abcdef': 'md5' is not a digest " \
           "algorithm Docker takes (sha256, sha384, sha512)" in lines
    assert not any(":17:" in line for line in lines)  # stack: 2**63-1 is the largest limit Docker holds


def test_ports_beside_no_network_or_a_named_one_are_taken(clean_env, tmp_path):
    for network in ("none", "bridge", "my-net"):
        path = tmp_path / f"{network}.yaml"
        path.write_text(f'name: ports-ok\ndescription: d\ndevice: {{kind: cpu}}\nimage: {{ref: "python:3.11"}}\n'
                        f'container: {{network: {network}, ports: ["8080:80"]}}\n')
        assert loader.load(path, environ=dict(clean_env), roots=[]).manifest.container.ports == ["8080:80"]
