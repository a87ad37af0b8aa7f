"""Values written in a manifest reach a real engine as Docker reads them: a Kubernetes-style
`64Gi` shm size (docker-py alone refuses it client-side), published ports with an address and a
protocol, soft:hard ulimits and lower-case capability names."""

import uuid

import pytest

from envctl.containers import LABEL_MANIFEST, ContainerSpec
from envctl.manifest import docker_values
from support import IMAGE
from testimages import _rootfs_tar

GIB = 1 << 30


@pytest.fixture
def busybox(engine):
    engine.api.import_image_from_data(_rootfs_tar(), repository=IMAGE.split(":")[0], tag=IMAGE.split(":")[1])
    yield IMAGE
    engine.images.remove(IMAGE, force=True)


def test_manifest_values_are_created_and_started_as_written(engine, busybox):
    spec = ContainerSpec(
        name=f"it-docker-values-{uuid.uuid4().hex[:8]}", image=busybox, manifest="it-docker-values", variant=None,
        cards=(), shm_size="64Gi", ipc_mode="shareable", ulimits={"nofile": "1024:2048", "stack": 8388608},
        cap_add=("sys_ptrace",), ports=("127.0.0.1:18557:80", "18558/udp"),
    )
    container = engine.containers.create(**spec.api_kwargs())
    try:
        host = engine.api.inspect_container(container.id)["HostConfig"]
        assert host["ShmSize"] == 64 * GIB
        assert host["PortBindings"] == {
            "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18557"}],
            "18558/udp": [{"HostIp": "", "HostPort": "18558"}],
        }
        assert sorted((u["Name"], u["Soft"], u["Hard"]) for u in host["Ulimits"]) == [("nofile", 1024, 2048), ("stack", 8388608, 8388608)]
        assert host["CapAdd"] == ["sys_ptrace"]
        container.start()
        code, output = container.exec_run(["sh", "-c", "grep 'Max open files' /proc/self/limits; df -k /dev/shm | tail -1"])
        limits, shm = output.decode().splitlines()
        assert code == 0 and limits.split()[3:5] == ["1024", "2048"]
        assert int(shm.split()[1]) == 64 * GIB // 1024  # tmpfs of 64 GiB, in KiB
    finally:
        container.remove(force=True)
    assert spec.labels()[LABEL_MANIFEST] == "it-docker-values"


def test_the_docker_create_line_a_plan_shows_is_taken_by_the_docker_cli(engine, busybox, tmp_path):
    """The plan's `docker create` line writes the size as every Docker CLI reads it (the 20.10
    CLI refuses `64Gi`: "invalid suffix: 'gi'")."""
    import subprocess

    spec = ContainerSpec(name=f"it-docker-values-cli-{uuid.uuid4().hex[:8]}", image=busybox, manifest="it-docker-values",
                         variant=None, cards=(), shm_size="64Gi", ports=("18559",))
    args = spec.cli_args()
    assert args[args.index("--shm-size") + 1] == "64g" and args[args.index("--publish") + 1] == "18559:18559"
    done = subprocess.run(args, capture_output=True, text=True, timeout=60)
    try:
        assert done.returncode == 0, done.stderr
        host = engine.api.inspect_container(spec.name)["HostConfig"]
        assert host["ShmSize"] == docker_values.size_bytes("64Gi")
        assert host["PortBindings"] == {"18559/tcp": [{"HostIp": "", "HostPort": "18559"}]}
    finally:
        engine.api.remove_container(spec.name, force=True)


def test_a_value_only_the_engine_can_refuse_is_a_clear_error_and_leaves_no_container(engine, busybox, tmp_path):
    """A network the engine lacks passes validate (its name is well-formed); up reports the
    engine's own words and removes the container it could not start."""
    from envctl.lifecycle import ContainerError, execute
    from envctl.plan import World

    name = f"it-docker-values-net-{uuid.uuid4().hex[:8]}"
    spec = ContainerSpec(name=name, image=busybox, manifest="it-docker-values", variant=None, cards=(),
                         network_mode=f"envctl-it-no-such-network-{uuid.uuid4().hex[:8]}")
    image_id = engine.images.get(busybox).id
    with pytest.raises(ContainerError) as caught:
        execute(engine, spec, "create", World(True, image_id), image_id, str(tmp_path / "manifest.yaml"), tmp_path)
    assert f"the engine could not start {name}: network {spec.network_mode} not found" == caught.value.message
    assert engine.containers.list(all=True, filters={"name": name}) == []


def test_what_validate_refuses_as_beyond_docker_the_engine_refuses(engine, busybox):
    """The rules `validate` holds for values that look well formed are the engine's own: sizes
    and limits beyond Go's int64, ports beside another container's network, digests go-digest
    does not take. Each is refused at create, and no container is left."""
    import docker

    name = f"it-docker-values-refused-{uuid.uuid4().hex[:8]}"
    refusals = [
        ({"host_config": engine.api.create_host_config(shm_size=10 ** 20)}, "cannot unmarshal number 100000000000000000000"),
        ({"host_config": engine.api.create_host_config(ulimits=[docker.types.Ulimit(name="nofile", soft=1, hard=10 ** 20)])},
         "cannot unmarshal number 100000000000000000000"),
        ({"host_config": engine.api.create_host_config(network_mode=f"container:{name}-peer", port_bindings={"80/tcp": 18560}),
          "ports": ["80/tcp"]}, "conflicting options: port publishing and the container type network mode"),
    ]
    for kwargs, message in refusals:
        with pytest.raises(docker.errors.APIError) as caught:
            engine.api.create_container(busybox, ["sleep", "1"], name=name, **kwargs)
        assert message in str(caught.value)
        assert not engine.containers.list(all=True, filters={"name": name})
    for digest, message in [("sha256:" + "a" * 32, "invalid checksum digest length"),
                            ("sha256:" + "A" * 64, "invalid checksum digest format"),
                            ("md5:" + "a" * 32, "unsupported digest algorithm")]:
        with pytest.raises(docker.errors.APIError) as caught:
            engine.api.inspect_image(f"{busybox.split(':')[0]}@{digest}")
        assert message in str(caught.value)
        with pytest.raises(ValueError):
            docker_values.image_reference(f"{busybox.split(':')[0]}@{digest}")
    with pytest.raises(ValueError):
        docker_values.size_bytes(10 ** 20)
