"""What plan --nodes shows for each node (envctl.multinode.nodeplan): the command as it reads
with the node's contract, the launcher's own per-node line, the contract's variables only."""

from envctl.multinode.nodeplan import NodeCommand, RUN_ID_PLACEHOLDER, expand_known, lines, node_plans
from envctl.nodes.contract import Node, build_contract


def contract():
    nodes = [Node("lab1", "10.0.0.1", 2, "eth1", "10.0.0.1"), Node("lab2", "10.0.0.2", 2, "eth1", "10.0.0.2")]
    return build_contract(nodes, 29500, RUN_ID_PLACEHOLDER, "npu")


def test_known_variables_are_shown_with_their_values_others_as_written():
    env = {"ENVCTL_NODE_RANK": "1", "MASTER_ADDR": "10.0.0.1"}
    text = 'torchrun --node_rank "${ENVCTL_NODE_RANK:-0}" --master_addr $MASTER_ADDR --x ${OTHER:-7} $HOME ${ENVCTL_NODE_RANK}'
    assert expand_known(text, env) == 'torchrun --node_rank "1" --master_addr 10.0.0.1 --x ${OTHER:-7} $HOME 1'


def test_each_node_gets_its_rank_its_launcher_line_and_no_secret():
    commands = [NodeCommand(("bash", "-c", "torchrun --node_rank $ENVCTL_NODE_RANK train.py\n"), {"HF_TOKEN": "hf_secret"},
                            "/work", None)] * 2
    plans = node_plans(contract(), commands, "torchrun")
    assert [p["rank"] for p in plans] == [0, 1]
    assert plans[1]["command_on_node"] == ["bash", "-c", "torchrun --node_rank 1 train.py\n"]
    assert plans[1]["launcher_command"][:5] == ["torchrun", "--nnodes", "2", "--node_rank", "1"]
    assert plans[1]["env"]["HCCL_IF_IP"] == "10.0.0.2" and "RANK" not in plans[1]["env"]
    shown = "\n".join(lines(plans))
    assert "hf_secret" not in shown and "HF_TOKEN" not in shown  # the entrypoint's own variables are never shown
    assert "node 1 lab2: address 10.0.0.2 on eth1, 2 process(es), master 10.0.0.1:29500" in shown
    assert "  runs      bash -c 'torchrun --node_rank 1 train.py\n'" in shown
    assert "  env       ENVCTL_NODE_IPS=10.0.0.1,10.0.0.2" in shown


def test_a_script_of_several_lines_is_shown_line_by_line():
    commands = [NodeCommand(("/bin/sh", "-c", "cd /w\nmsrun --node_rank=$ENVCTL_NODE_RANK --join=True x.py\n"), {}, None,
                            None)] * 2
    shown = lines(node_plans(contract(), commands, "msrun"))
    at = shown.index("  runs      /bin/sh -c with this script:")
    assert shown[at + 1:at + 3] == ["            cd /w", "            msrun --node_rank=0 --join=True x.py"]
    assert any(line.startswith("  launcher  msrun --worker_num=4 --local_worker_num=2") for line in shown)


def test_what_exec_adds_for_every_node_is_among_the_variables():
    commands = [NodeCommand(("run.sh",), {}, None, None)] * 2
    plans = node_plans(contract(), commands, "none", {"RANK_TABLE_FILE": "/envctl/nodes/RUN_ID/hccl.json"})
    assert [p["env"]["RANK_TABLE_FILE"] for p in plans] == ["/envctl/nodes/RUN_ID/hccl.json"] * 2
    assert "  env       RANK_TABLE_FILE=/envctl/nodes/RUN_ID/hccl.json" in lines(plans)
    assert "RANK_TABLE_FILE" not in node_plans(contract(), commands, "none")[0]["env"]
