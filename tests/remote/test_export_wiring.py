"""The Kubernetes exports' wiring, run for real: no API server or kubelet can run here, so this
test plays the engine. It takes the exported objects (the `volcano`, `ascendjob`, `pytorchjob`
and `k8s-job` formats of chatglm-tiny-cpu:nodes `train`), and for each pod runs its container
with `docker run` on an SSH-lab host (lab1 is rank 0, lab2 rank 1), giving it exactly what the
engine gives a pod, from the pod spec and the engine's own rules:

- the container's image, command, env, volumeMounts (hostPath → bind mount with its readOnly,
  the ConfigMap → its data as files, `emptyDir {medium: Memory}` at /dev/shm → a /dev/shm of
  its sizeLimit), hostNetwork/hostIPC;
- the names the engine makes resolvable (cluster DNS) as /etc/hosts entries, and the variables
  the engine injects:
  - volcano: env plugin VC_TASK_INDEX = VK_TASK_INDEX = the pod's index in its task
    (volcano pkg/controllers/job/plugins/env/const.go); svc plugin VC_<TASK>_HOSTS and
    VC_<TASK>_NUM, and `<pod name>.<job>` resolving to the pod (hostname = pod name
    `<job>-<task>-<i>`, subdomain = the job: plugins/svc/svc.go, helpers.go PodNameFmt);
  - k8s-job: JOB_COMPLETION_INDEX, `<job>-<index>.<service>` resolving to the pod (Kubernetes'
    "Job with pod-to-pod communication": hostname `<job>-<index>`, subdomain the headless Service);
  - pytorchjob: PYTHONUNBUFFERED, MASTER_ADDR = `<job>-master-0` (the master's Service),
    MASTER_PORT = the `pytorchjob-port`, WORLD_SIZE = replicas, RANK = PET_NODE_RANK = pod
    rank with worker i → i+1, PET_NNODES, PET_MASTER_ADDR/PORT, PET_NPROC_PER_NODE
    (training-operator v1.9 pkg/controller.v1/pytorch/envvar.go, research §1.1);
  - ascendjob (framework pytorch): MASTER_ADDR = the master Service's ClusterIP (here the master
    pod's own address: no kube-proxy), MASTER_PORT = `ascendjob-port`, RANK = pod rank,
    WORLD_SIZE = NPUs in all, LOCAL_WORLD_SIZE, LOCAL_RANK as "{0}" (MindCluster
    environment_variable_description.md Table 2).

The artifacts reach each host's own cache with `envctl fetch --hosts` from a loopback HF mirror,
as the export's README says to. The exported command must really train: torchrun's static
rendezvous over gloo on the two hosts, both ranks logging the same losses, rank 0 writing the
checkpoint. This proves the YAML's command, env and mounts, not the operators themselves.
"""

from __future__ import annotations

import json
import re
import sys
import time

import pytest
import yaml

from cpu_images import ensure_cpu_reference, load_on_lab
from support import REPO

sys.path.insert(0, str(REPO / "demo"))
from run_demo import mirror, tiny_repos  # noqa: E402  (the demo's tiny model and dataset, and their mirror)

HOSTS = ["lab1", "lab2"]
MANIFEST = "chatglm-tiny-cpu:nodes"
CRDS = REPO.parent / "shared" / "k8s-crds"
LOSS = re.compile(r"^step (\d+) loss ([0-9.]+)$", re.M)


@pytest.fixture(scope="module")
def image(lab_session):
    ref = ensure_cpu_reference()
    load_on_lab(lab_session, ref, HOSTS)
    return ref


def engine_view(fmt: str, job: str, rank: int, ips: list[str], port: int) -> tuple[dict, dict]:
    """(variables, host name → IP) the engine gives pod `rank` (rules in the module docstring)."""
    n = len(ips)
    if fmt == "volcano":
        names = [f"{job}-node-{i}.{job}" for i in range(n)]
        return ({"VC_TASK_INDEX": str(rank), "VK_TASK_INDEX": str(rank), "VC_NODE_HOSTS": ",".join(names),
                 "VC_NODE_NUM": str(n)}, dict(zip(names, ips)))
    if fmt == "k8s-job":
        return {"JOB_COMPLETION_INDEX": str(rank)}, {f"{job}-{i}.{job}": ip for i, ip in enumerate(ips)}
    if fmt == "pytorchjob":
        master = f"{job}-master-0"
        return ({"PYTHONUNBUFFERED": "0", "MASTER_ADDR": master, "MASTER_PORT": str(port), "WORLD_SIZE": str(n),
                 "RANK": str(rank), "PET_NODE_RANK": str(rank), "PET_NNODES": str(n), "PET_MASTER_ADDR": master,
                 "PET_MASTER_PORT": str(port), "PET_NPROC_PER_NODE": "auto"}, {master: ips[0]})
    if fmt == "ascendjob":
        return ({"MASTER_ADDR": ips[0], "MASTER_PORT": str(port), "RANK": str(rank), "WORLD_SIZE": str(8 * n),
                 "LOCAL_WORLD_SIZE": "8", "LOCAL_RANK": "{0,1,2,3,4,5,6,7}",
                 "REPLICA_TYPE": "master" if rank == 0 else "worker"}, {})
    raise AssertionError(fmt)


def pod_templates(objects: list[dict], fmt: str) -> list[dict]:
    """The pod template of each rank, in rank order, as the engine creates the pods."""
    job = next(o for o in objects if o["kind"] not in ("ConfigMap", "Service"))
    if fmt == "volcano":
        (task,) = job["spec"]["tasks"]
        return [task["template"]] * task["replicas"]
    if fmt == "k8s-job":
        return [job["spec"]["template"]] * job["spec"]["completions"]
    replicas = job["spec"]["pytorchReplicaSpecs" if fmt == "pytorchjob" else "replicaSpecs"]
    return [replicas["Master"]["template"]] * replicas["Master"]["replicas"] + \
        [replicas["Worker"]["template"]] * replicas["Worker"]["replicas"]


def docker_run_args(template: dict, config_dir: str, config_name: str, env: dict, hosts: dict, name: str) -> list[str]:
    spec = template["spec"]
    (container,) = spec["containers"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    args = ["run", "-d", "--name", name]
    if spec.get("hostNetwork"):
        args += ["--network", "host"]
    if spec.get("hostIPC"):
        args += ["--ipc", "host"]
    for host, ip in hosts.items():
        args += ["--add-host", f"{host}:{ip}"]
    for entry in container.get("env", []):
        assert "value" in entry, f"{entry['name']}: a CPU export has no valueFrom"
        args += ["-e", f"{entry['name']}={entry['value']}"]
    for key, value in env.items():
        args += ["-e", f"{key}={value}"]
    for mount in container["volumeMounts"]:
        volume = volumes[mount["name"]]
        suffix = ":ro" if mount.get("readOnly") else ""
        if "hostPath" in volume:
            args += ["-v", f"{volume['hostPath']['path']}:{mount['mountPath']}{suffix}"]
        elif "configMap" in volume:
            assert volume["configMap"]["name"] == config_name
            args += ["-v", f"{config_dir}:{mount['mountPath']}{suffix}"]
        elif volume.get("emptyDir", {}).get("medium") == "Memory" and mount["mountPath"] == "/dev/shm":
            args += ["--shm-size", str(_bytes(volume["emptyDir"]["sizeLimit"]))]
        else:
            raise AssertionError(f"a volume this test cannot give: {volume}")
    for cap in (container.get("securityContext") or {}).get("capabilities", {}).get("add", []):
        args += ["--cap-add", cap]
    return args + ["--entrypoint", container["command"][0], container["image"], *container["command"][1:]]


def _bytes(quantity: str) -> int:
    number, unit = re.fullmatch(r"([0-9]+)(Gi|Mi|Ki)?", quantity).groups()
    return int(number) * {"Gi": 1 << 30, "Mi": 1 << 20, "Ki": 1 << 10, None: 1}[unit]


def wait_exit(lab, host: str, name: str, timeout: float = 600) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = lab.docker(host, "inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", name).stdout.split()
        if state and state[0] == "exited":
            return int(state[1])
        time.sleep(2)
    raise AssertionError(f"{name} on {host} still runs after {timeout} s")


@pytest.fixture(scope="module")
def fetched(lab_session, image, tmp_path_factory):
    """The tiny model and dataset in every lab host's own cache, by `envctl fetch --hosts`; the
    environment (revisions, data directory) the export must be written with."""
    from world import World

    base = tmp_path_factory.mktemp("export-wiring")
    world = World(lab_session, base, "rt-export-wiring")
    (base / "home").mkdir()
    world.write_inventory(**{h: {} for h in HOSTS})
    model, dataset = tiny_repos(image, REPO / ".demo")
    env = world.environ()
    with mirror(model, dataset, env):
        done = world.run("fetch", MANIFEST, "--hosts", ",".join(HOSTS), env=env, timeout=900)
        assert done.returncode == 0, done.stdout + done.stderr
    env.pop("HF_ENDPOINT")
    yield world, env
    world.clean()


@pytest.mark.parametrize("fmt", ["volcano", "k8s-job", "pytorchjob", "ascendjob"])
def test_the_exported_pods_train_together_given_what_the_engine_gives(fmt, fetched, lab):
    world, env = fetched
    out = world.base / f"export-{fmt}"
    crds = [arg for path in sorted(CRDS.glob("*.yaml")) for arg in ("--crd", str(path))]
    done = world.run("export", MANIFEST, "--entrypoint", "train", "--nodes", "2", "--format", fmt, "-o", str(out),
                     "--data-dir", world.data_dir(), "--check", *crds, env=env)
    assert done.returncode == 0, done.stderr
    (yaml_file,) = out.glob("*.yaml")
    objects = list(yaml.safe_load_all(yaml_file.read_text()))
    config = next(o for o in objects if o["kind"] == "ConfigMap")
    spec = json.loads(config["data"]["node.json"])
    job, port = yaml_file.stem, spec["port"]
    ips = [lab.ip(h) for h in HOSTS]

    for host in HOSTS:  # what an earlier format's run left
        lab.run_in(host, "rm", "-rf", f"{world.data_dir()}/workspaces/envctl-chatglm-tiny-cpu-nodes/output")
    names = []
    try:
        for rank, (host, template) in enumerate(zip(HOSTS, pod_templates(objects, fmt))):
            config_dir = f"/root/export-{fmt}-prelude"
            local = lab.path(host, config_dir)
            local.mkdir(parents=True, exist_ok=True)
            for file_name, text in config["data"].items():
                (local / file_name).write_text(text)
            variables, resolvable = engine_view(fmt, job, rank, ips, port)
            name = f"rt-export-{fmt}-{rank}"
            lab.docker(host, "rm", "-f", name)
            started = lab.docker(host, *docker_run_args(template, config_dir, config["metadata"]["name"], variables,
                                                        resolvable, name))
            assert started.returncode == 0, started.stderr
            names.append((host, name))
        codes = [wait_exit(lab, host, name) for host, name in names]
        logs = [(lambda shown: shown.stdout + shown.stderr)(lab.docker(host, "logs", name)) for host, name in names]
    finally:
        for host, name in names:
            lab.docker(host, "rm", "-f", name)

    assert codes == [0, 0], "\n\n".join(logs)
    runs = [re.search(r"envctl prelude: run (\S+): master (\S+), 2 nodes, 2 processes", log) for log in logs]
    assert all(runs) and runs[0].groups() == runs[1].groups(), logs  # one run ID on both nodes
    assert runs[0].group(2) == f"{ips[0]}:{port}", logs  # the master at lab1's address
    losses = [LOSS.findall(log) for log in logs]
    assert losses[0] and losses[0] == losses[1], logs  # one model trained by both ranks
    assert len(losses[0]) == 30
    for log in logs:
        assert re.search(rf"ptune: rank [01] of 2 \(gloo, master {re.escape(ips[0])}:{port}\)", log), log
    workspace = lab.path("lab1", f"{world.data_dir()}/workspaces/envctl-chatglm-tiny-cpu-nodes")
    assert (workspace / "output" / "ptune").is_dir()
    assert not (lab.path("lab2", f"{world.data_dir()}/workspaces/envctl-chatglm-tiny-cpu-nodes") / "output" / "ptune").exists()
