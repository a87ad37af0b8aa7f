"""The format-neutral export (envctl.export.model): the node command is the one `exec --nodes`
starts, computed from a plan of a real (simulated) host the way envctl.multinode.command does;
the prelude computes the same contract as envctl.nodes.contract; bad requests are refused."""

import json
import re
from dataclasses import replace

import pytest

import hostsim
from fake_engine import FakeEngine
from envctl import execute
from envctl.errors import EnvctlError
from envctl.export import prelude
from envctl.export.files import node_spec, prelude_files
from envctl.export.model import build_export, job_name
from envctl.hosts.local import LocalHost
from envctl.manifest.loader import load
from envctl.nodes.contract import FORBIDDEN, Node, build_contract
from envctl.observe import observe
from envctl.plan import _command, build_plan
from support import REPO

MULTI_NODE = [("chatglm2-npu", "finetune"), ("chatglm2-npu-fastchat", "train"), ("chatglm3-mlu", "train"),
              ("chatglm3-npu-mindformers", "finetune"), ("chinese-alpaca2-mlu:7b", "sft"),
              ("chinese-alpaca2-mlu:13b", "pretrain")]


def exec_nodes_argv(loaded, entrypoint, root, environ, sets=(), extra=()):
    """What envctl.multinode.command.exec_on_nodes starts on a node: the entrypoint of the node's
    plan, its nodes.run through the shell when given, --set and extra arguments applied."""
    device = loaded.manifest.device
    version = re.search(r"[0-9][0-9A-Za-z.]*", device.driver or "5.10.22").group(0)
    if device.kind == "mlu":
        hostsim.mlu_host(root, cards=16, driver=version)
    else:
        hostsim.npu_host(root, cards=8, version=version)
    plan = build_plan(loaded, observe(LocalHost(str(root)), loaded, FakeEngine(), environ=environ), environ=environ)
    entry = {e.name: e for e in plan.entrypoints}[entrypoint]
    declared = loaded.manifest.entrypoints[entrypoint]
    if declared.nodes.run is not None:
        entry = replace(entry, argv=_command(declared.nodes.run, loaded.manifest.container.shell),
                        shell_line=isinstance(declared.nodes.run, str))
    return execute.apply_overrides(entry, list(sets), list(extra))


@pytest.mark.parametrize("reference,entrypoint", MULTI_NODE)
def test_the_node_command_is_the_one_exec_nodes_starts(reference, entrypoint, clean_env, tmp_path):
    loaded = load(reference, environ=dict(clean_env))
    argv, variables = exec_nodes_argv(loaded, entrypoint, tmp_path / "root", dict(clean_env))
    export = build_export(loaded, entrypoint, 3)
    assert export.command == argv
    assert {k: v for k, v in export.env.items() if k in variables} == {k: v for k, v in variables.items() if k not in FORBIDDEN}
    assert not set(FORBIDDEN) & set(export.env)


def test_set_and_extra_arguments_reach_the_command_as_in_exec(clean_env, tmp_path):
    loaded = load("chatglm3-mlu", environ=dict(clean_env))
    argv, variables = exec_nodes_argv(loaded, "train", tmp_path / "root", dict(clean_env), ("max_steps=7",), ("--seed", "3"))
    export = build_export(loaded, "train", 2, sets=("max_steps=7",), extra=("--seed", "3"))
    assert export.command == argv and export.env["MAX_STEPS"] == "7" == variables["MAX_STEPS"]
    assert export.command[-1].rstrip().endswith("--seed 3")


def test_devices_resources_shm_and_node_paths(clean_env):
    export = build_export(load("chatglm3-npu-mindformers", environ=dict(clean_env)), "finetune", 2)
    assert export.resources == {"huawei.com/Ascend910": "8"} and export.processes == 8
    assert export.master_port == 8118  # msrun's default, as exec --nodes chooses it
    assert export.shm_bytes == 64 << 30 and export.host_network and export.host_ipc
    assert export.workspace.source == "/root/.local/share/envctl/workspaces/envctl-chatglm3-npu-mindformers"
    drivers = {p.source for p in export.host_paths if p.what == "driver"}
    assert "/usr/local/Ascend/driver/lib64" in drivers
    assert all(p.source.startswith("/root/.local/share/envctl/") for p in export.host_paths if p.what.startswith("artifact"))
    texts = "\n".join(export.prerequisites)
    assert "ulimit memlock" in texts and "ulimit stack" in texts and "ascend-device-plugin" in texts


def test_a_claim_holds_artifacts_and_workspace_relative_to_its_root(clean_env):
    export = build_export(load("chatglm3-mlu", environ=dict(clean_env)), "train", 2, claim="envctl-data", data_dir="/data/envctl")
    claimed = [p for p in export.host_paths if p.claim]
    assert {p.what for p in claimed} >= {"workspace"} and all(not p.source.startswith("/") for p in claimed)
    assert export.workspace.source == "workspaces/envctl-chatglm3-mlu"
    assert any("PersistentVolumeClaim envctl-data" in item for item in export.prerequisites)


@pytest.mark.parametrize("entrypoint,nodes,words", [("infer", 2, "does not say it can run on several nodes"),
                                                    ("nosuch", 2, "has no entrypoint 'nosuch'"),
                                                    ("train", 1, "needs two or more")])
def test_refused_requests_say_why(entrypoint, nodes, words, clean_env):
    with pytest.raises(EnvctlError) as caught:
        build_export(load("chatglm3-mlu", environ=dict(clean_env)), entrypoint, nodes)
    assert words in caught.value.message and caught.value.exit_code == 2


@pytest.mark.parametrize("claim", ["My_Claim", "", "-data", "data-", "a" * 254, "data/x"])
def test_a_claim_that_cannot_be_a_pvc_name_is_refused(claim, clean_env):
    """A PersistentVolumeClaim name is a DNS-1123 subdomain: `--pvc My_Claim` wrote a pod that the
    API server accepts and that stays Pending; `--pvc ''` exported without the claim at all."""
    with pytest.raises(EnvctlError) as caught:
        build_export(load("chatglm3-mlu", environ=dict(clean_env)), "train", 2, claim=claim)
    assert "not a PersistentVolumeClaim name" in caught.value.message and caught.value.exit_code == 2
    assert build_export(load("chatglm3-mlu", environ=dict(clean_env)), "train", 2, claim="lab.envctl-data-2").claim


@pytest.mark.parametrize("cards", [0, -1])
def test_no_cards_or_a_negative_count_is_refused_not_an_export_without_devices(cards, clean_env):
    """--cards 0 wrote an NPU job with no huawei.com/Ascend910 request (and the image's eight
    visible devices); --cards -1 a quantity of -1 the API server refuses."""
    for reference, entrypoint in (("chatglm2-npu", "finetune"), ("chatglm3-mlu", "train")):
        with pytest.raises(EnvctlError) as caught:
            build_export(load(reference, environ=dict(clean_env)), entrypoint, 2, cards=cards)
        assert f"--cards {cards}: give one or more cards per node" in caught.value.message and caught.value.exit_code == 2


def test_job_names_are_dns_labels_short_enough_for_engine_suffixes():
    assert job_name("chinese-alpaca2-mlu", "13b", "merge-pretrain") == "chinese-alpaca2-mlu-13b-merge-pretrain"
    long = job_name("A_very.long-Manifest_name_" * 4, None, "train")
    assert len(long) <= 40 and re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", long)


def test_job_names_that_are_cut_or_folded_stay_apart():
    """Two entrypoints or variants of a long-named manifest were cut to one job name (the
    entrypoint fell off), and `Train` / `train`, `train_lora` / `train-lora` folded to one: the
    second export's objects replaced the first's on `kubectl apply`."""
    stem = "a-very-long-manifest-name-for-testing-the-limit"
    names = [job_name(stem, None, "train"), job_name(stem, None, "finetune"), job_name(stem, "7b", "train"),
             job_name(stem, "13b", "train"), job_name("m", None, "Train"), job_name("m", None, "train"),
             job_name("m", None, "train_lora"), job_name("m", None, "train-lora"), job_name("123", None, "4"),
             job_name("567", None, "8")]
    assert len(set(names)) == len(names), names
    for name in names:
        assert len(name) <= 40 and re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name), name
    assert job_name("m", None, "train") == "m-train"  # a name that is already a label stays as it is


def test_the_prelude_ships_the_contract_module_byte_for_byte(clean_env):
    export = build_export(load("chatglm3-mlu", environ=dict(clean_env)), "train", 2)
    files = prelude_files(node_spec(export, rank_from="VC_TASK_INDEX", master="m.example"))
    assert files["contract.py"] == (REPO / "envctl" / "nodes" / "contract.py").read_text()
    spec = json.loads(files["node.json"])
    assert spec["command"] == list(export.command) and spec["rank_from"] == "VC_TASK_INDEX" and spec["nnodes"] == 2


def test_the_prelude_builds_the_contract_exec_nodes_builds():
    spec = {"port": 29500, "device_kind": "npu", "processes": 8}
    answer = {"run_id": "train-x", "nodes": [["a", "10.0.0.1", 8, "eth0", "10.0.0.1"], ["b", "10.0.0.2", 8, "eth1", "10.0.0.2"]]}
    expected = build_contract([Node("a", "10.0.0.1", 8, "eth0", "10.0.0.1"), Node("b", "10.0.0.2", 8, "eth1", "10.0.0.2")],
                              29500, "train-x", "npu")
    assert prelude.contract_of(spec, answer) == expected
    assert prelude.contract_of(spec, answer).env(1)["HCCL_IF_IP"] == "10.0.0.2"


@pytest.mark.parametrize("environ,spec,found", [
    ({"VC_TASK_INDEX": "1"}, {"rank_from": "VC_TASK_INDEX"}, 1),
    ({"VC_TASK_INDEX": "1", "ENVCTL_EXPORT_RANK": "0"}, {"rank_from": "VC_TASK_INDEX"}, 0),
    ({"RANK": "1", "WORLD_SIZE": "16"}, {"rank_from": "RANK"}, 1),
])
def test_the_prelude_takes_the_rank_from_the_engines_variable(environ, spec, found):
    assert prelude.find_rank({"nnodes": 2, **spec}, environ) == found


@pytest.mark.parametrize("environ", [{}, {"VC_TASK_INDEX": "2"}, {"VC_TASK_INDEX": "x"}])
def test_the_prelude_refuses_a_missing_or_wrong_rank(environ):
    with pytest.raises(prelude.PreludeError):
        prelude.find_rank({"nnodes": 2, "rank_from": "VC_TASK_INDEX"}, environ)


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_prelude_rendezvous_waits_for_the_master_and_hands_every_node_one_answer():
    """Rank 1 starts first and keeps trying until rank 0 listens (the wait for the master);
    both get the same nodes and run ID; rank 1's address and interface are its side of the
    connection (loopback here)."""
    import threading
    import time

    port = _free_port()
    spec = {"nnodes": 2, "processes": 1, "entrypoint": "train", "names": ["a", "b"]}
    answers = {}
    node = threading.Thread(target=lambda: answers.__setitem__(1, prelude.rendezvous_node(1, "localhost", port,
                                                                                           time.time() + 30)))
    node.start()
    time.sleep(1.5)  # rank 1 is already retrying
    answers[0] = prelude.rendezvous_master(spec, port, time.time() + 30)
    node.join(30)
    assert answers[0] == answers[1]
    assert answers[0]["nodes"][1] == ["b", "127.0.0.1", 1, "lo", "127.0.0.1"]
    assert answers[0]["run_id"].startswith("train-")


@pytest.mark.parametrize("told,spec_names,expected", [
    (("lab1", "lab2"), None, ["lab1", "lab2"]),  # Slurm: each task's SLURMD_NODENAME
    (("lab1", "lab2"), ["a", "b"], ["lab1", "lab2"]),  # what the node says wins over node.json
    ((None, None), ["a", "b"], ["a", "b"]),  # pod host names the export knows in advance
    ((None, None), None, ["node-0", "node-1"]),  # nothing given any name
    ((None, "lab2"), None, ["node-0", "lab2"]),  # one rank told, the other not
])
def test_the_prelude_names_each_node_as_its_engine_does(told, spec_names, expected):
    """nodes.json's names: the name each node was given (ENVCTL_EXPORT_NAME, said in its hello),
    else node.json's names, else node-<rank>; every rank gets the same list."""
    import threading
    import time

    port = _free_port()
    spec = {"nnodes": 2, "processes": 1, "entrypoint": "train", **({"names": spec_names} if spec_names else {})}
    answers = {}
    node = threading.Thread(target=lambda: answers.__setitem__(
        1, prelude.rendezvous_node(1, "127.0.0.1", port, time.time() + 30, told[1])))
    node.start()
    answers[0] = prelude.rendezvous_master(spec, port, time.time() + 30, told[0])
    node.join(30)
    assert answers[0] == answers[1]
    assert [entry[0] for entry in answers[0]["nodes"]] == expected  # contract_of's names (test above)


def test_the_prelude_refuses_a_rank_said_twice_and_gives_up_on_a_silent_master():
    import threading
    import time

    port = _free_port()
    spec = {"nnodes": 3, "processes": 1, "entrypoint": "train"}
    failures = []

    def node():
        try:
            prelude.rendezvous_node(1, "127.0.0.1", port, time.time() + 20)
        except prelude.PreludeError as problem:
            failures.append(str(problem))

    threads = [threading.Thread(target=node) for _ in range(2)]
    for thread in threads:
        thread.start()
    with pytest.raises(prelude.PreludeError, match="rank 1, which is taken"):
        prelude.rendezvous_master(spec, port, time.time() + 20)
    for thread in threads:
        thread.join(30)
    assert any("refused this node" in f or "no answer" in f for f in failures), failures
    with pytest.raises(prelude.PreludeError, match="did not answer in time"):
        prelude.rendezvous_node(1, "127.0.0.1", _free_port(), time.time() + 2)


NEIGHBOURS = """\
name: neighbours
description: every container setting an engine may not express
device: {kind: cpu}
image: {ref: "example/trainer:1"}
container:
  network: host
  ipc: host
  pid: host
  shm_size: 3g
  runtime: ascend
  user: trainer
  cap_add: [SYS_PTRACE, CAP_IPC_LOCK]
  ulimits: {memlock: -1, nofile: "1024:65536"}
  env: {HF_TOKEN: "${HF_TOKEN}", PLAIN: "1"}
  mounts: ["/srv/datasets:/data:ro"]
setup:
  - {name: install the extras, run: "pip install extras"}
entrypoints:
  train:
    run: torchrun --nnodes="$ENVCTL_NNODES" --node_rank="$ENVCTL_NODE_RANK" --master_addr="$ENVCTL_MASTER_ADDR" --master_port="$ENVCTL_MASTER_PORT" t.py
    nodes: {launcher: torchrun}
"""


def test_what_an_engine_cannot_express_is_a_prerequisite_never_dropped(clean_env, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secretvalue123")
    path = tmp_path / "neighbours.yaml"
    path.write_text(NEIGHBOURS)
    export = build_export(load(str(path), environ=dict(clean_env)), "train", 2)
    texts = "\n".join(export.prerequisites)
    for words in ("ulimit memlock of at least unlimited", "ulimit nofile of at least 1024 (soft) / 65536 (hard)",
                  "the OCI runtime 'ascend'", "the user trainer in the image", "the setup steps inside the image (install the extras)",
                  "/srv/datasets on every node", "the Secret neighbours-train-secrets with the keys HF_TOKEN (Kubernetes), "
                  "or HF_TOKEN exported in the environment sbatch or the node scripts run in (slurm, shell)",
                  "imagePullPolicy: Never"):
        assert words in texts, words
    assert "HF_TOKEN" not in export.env and export.env["PLAIN"] == "1"
    from envctl.export import formats
    from envctl.export.files import render

    for name in ("volcano", "ascendjob", "pytorchjob", "k8s-job"):
        files = render(export, formats.get(name))
        text = "\n".join(files.values())
        assert "hf_secretvalue123" not in text  # never written
        assert "secretKeyRef" in text and "hostPID: true" in text and "sizeLimit: 3Gi" in text
        assert "- SYS_PTRACE\n" in text and "- IPC_LOCK\n" in text
        assert all(item in files["README.md"] for item in export.prerequisites)


def test_the_prelude_and_the_contract_parse_as_python_3_7():
    """The oldest vendor images run Python 3.7 (the Cambricon PyTorch 1.9 SDK image, py37): no
    syntax of later versions in the two modules the containers run."""
    import ast

    for path in (REPO / "envctl" / "export" / "prelude.py", REPO / "envctl" / "nodes" / "contract.py"):
        ast.parse(path.read_text(), filename=str(path), feature_version=(3, 7))
        for name in ("removeprefix", "removesuffix", "functools.cache(", "zip(strict"):
            assert name not in path.read_text(), f"{path.name} uses {name} (Python 3.9+)"


SECRET_COMMAND = """\
name: tokens
description: a secret expanded into the node's command, and a --set of a secret-looking parameter
device: {kind: cpu}
image: {ref: "example/trainer:1"}
container:
  env: {HF_TOKEN: "${HF_TOKEN}"}
entrypoints:
  train:
    params: {hub_token: "", STEPS: "3"}
    run: torchrun --nnodes="$ENVCTL_NNODES" --node_rank="$ENVCTL_NODE_RANK" --master_addr="$ENVCTL_MASTER_ADDR" --master_port="$ENVCTL_MASTER_PORT" t.py
    nodes: {launcher: torchrun}
  pinned:
    run: torchrun --nnodes="$ENVCTL_NNODES" --node_rank="$ENVCTL_NODE_RANK" --master_addr="$ENVCTL_MASTER_ADDR" --master_port="$ENVCTL_MASTER_PORT" t.py --token ${HF_TOKEN}
    nodes: {launcher: torchrun}
  deferred:
    run: torchrun --nnodes="$ENVCTL_NNODES" --node_rank="$ENVCTL_NODE_RANK" --master_addr="$ENVCTL_MASTER_ADDR" --master_port="$ENVCTL_MASTER_PORT" t.py --token "$${HF_TOKEN}"
    nodes: {launcher: torchrun}
"""


def test_a_secret_is_never_written_into_any_format_nor_its_readme(clean_env, tmp_path, monkeypatch):
    """A secret expanded into the command (node.json, the README and the scripts carry the command
    whole) is refused with the way to defer it to the container's shell; a --set of a
    secret-looking parameter and an extra argument holding a secret are treated alike; the
    deferred form exports, with the variable read from the Secret."""
    from envctl.export import formats
    from envctl.export.files import render

    monkeypatch.setenv("HF_TOKEN", "hf_secretvalue123")
    path = tmp_path / "tokens.yaml"
    path.write_text(SECRET_COMMAND)
    loaded = load(str(path), environ={**clean_env, "HF_TOKEN": "hf_secretvalue123"})
    for entrypoint, kwargs in (("pinned", {}), ("train", {"extra": ("--token", "hf_secretvalue123")})):
        with pytest.raises(EnvctlError) as refused:
            build_export(loaded, entrypoint, 2, **kwargs)
        assert refused.value.exit_code == 2 and "holds a secret" in str(refused.value)
        assert "$${NAME}" in refused.value.hint and "hf_secretvalue123" not in str(refused.value) + refused.value.hint
    for entrypoint, sets in (("deferred", ()), ("train", ("hub_token=hf_setvalue456", "STEPS=4"))):
        export = build_export(loaded, entrypoint, 2, sets=sets)
        for name in formats.load_all():
            text = "\n".join(render(export, formats.get(name)).values())
            assert "hf_secretvalue123" not in text and "hf_setvalue456" not in text, (entrypoint, name)
        assert "HF_TOKEN" in export.extra["secret_env"] and export.env.get("STEPS") in (None, "4")
    assert "HUB_TOKEN" in export.extra["secret_env"] and export.env["STEPS"] == "4"
