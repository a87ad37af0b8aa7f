"""Single-node pins in launcher commands (envctl.nodes.pins): each tutorial form, its neighbours,
and the multi-node forms that must pass. The pinned lines are the shipped manifests' own."""

import pytest

from envctl.nodes.pins import find_invocations, pin_problems
from envctl.nodes.shellwords import commands

CHATGLM3_MLU = '''set -e
OUTPUT_DIR="output/$RUN_NAME-$(date +%Y%m%d-%H%M%S)-$PRE_SEQ_LEN-$LR"
MASTER_PORT=$(shuf -n 1 -i 10000-65535)
python -m torch.distributed.launch --nnodes=1 --nproc_per_node="$ENVCTL_NUM_CARDS" --master_port "$MASTER_PORT" finetune.py \\
  --train_format multi-turn 2>&1 | tee "$OUTPUT_DIR/train.log"
'''
CHATGLM2_NPU = '''. ./env_npu.sh
set -e
MASTER_PORT=$(shuf -n 1 -i 10000-65535)
deepspeed --num_gpus="$ENVCTL_NUM_CARDS" --master_port "$MASTER_PORT" main_without_tokenizer.py \\
  --deepspeed "$DEEPSPEED_CONFIG"
'''
MINDFORMERS = '''bash scripts/msrun_launcher.sh "run_mindformer.py \\
  --config $CONFIG \\
  --run_mode finetune" "$ENVCTL_NUM_CARDS" 8118 output/msrun_log True 7200
'''

# (command, launcher, expected (1-based line, words in the message) per problem)
PINNED = [
    (CHATGLM3_MLU, "torch.distributed.launch", [(4, "--nnodes is '1'"), (4, "random on each node")]),
    (CHATGLM2_NPU, "deepspeed", [(4, "deepspeed --num_gpus without --no_ssh and --node_rank")]),
    (MINDFORMERS, "msrun", [(1, "msrun_launcher.sh with 6 arguments")]),
    ('bash scripts/msrun_launcher.sh "run_mindformer.py" 8', "msrun", [(1, "with 2 arguments")]),
    ('bash scripts/msrun_launcher.sh "run_mindformer.py"', "msrun", [(1, "with 1 argument starts")]),
    ('torchrun --standalone --nproc_per_node=8 train.py', "torchrun", [(1, "--standalone")]),
    ('torchrun --nnodes 1 --nproc_per_node 8 train.py', "torchrun", [(1, "--nnodes is '1'")]),
    ('torchrun --nnodes=1:1 train.py', "torchrun", [(1, "--nnodes is '1:1'")]),
    ('torchrun --nnodes="$ENVCTL_NNODES" --node-rank 0 train.py', "torchrun", [(1, "--node_rank is '0'")]),
    ('torchrun --master_addr=127.0.0.1 train.py', "torchrun", [(1, "--master_addr is '127.0.0.1'")]),
    ('torchrun --master_port=$((RANDOM + 20000)) train.py', "torchrun", [(1, "random on each node")]),
    ('PORT=$RANDOM\ntorchrun --master_port "$PORT" train.py', "torchrun", [(2, "PORT=$RANDOM")]),
    ('torchrun --nnodes "$NNODES" train.py', "torchrun", [(1, "$NNODES, which is not part of the per-node contract")]),
    ('deepspeed train.py', "deepspeed", [(1, "deepspeed without --no_ssh")]),
    ('deepspeed --hostfile hostfile train.py', "deepspeed", [(1, "deepspeed without --no_ssh")]),
    ('deepspeed --num_accelerators 8 --node_rank "$ENVCTL_NODE_RANK" train.py', "deepspeed", [(1, "--num_accelerators without --no_ssh")]),
    ('python -u -m deepspeed.launcher.launch --world_info="$WI" --node_rank=0 --master_addr="$MASTER_ADDR" '
     '--master_port="$MASTER_PORT" train.py', "deepspeed",
     [(1, "--world_info comes from $WI"), (1, "--node_rank is '0'")]),
    ('python -m deepspeed.launcher.launch train.py', "deepspeed",
     [(1, "no --node_rank"), (1, "no --master_addr"), (1, "no --master_port"), (1, "no --world_info")]),
    ('msrun --worker_num=8 --local_worker_num=8 train.py', "msrun",
     [(1, "--worker_num is '8'"), (1, "no --node_rank"), (1, "no --master_addr"), (1, "without --join=True")]),
    ('msrun --worker_num="$ENVCTL_WORLD_SIZE" --master_addr="$ENVCTL_MASTER_ADDR" --node_rank="$ENVCTL_NODE_RANK" '
     '--join=False train.py', "msrun", [(1, "without --join=True")]),
    ('bash scripts/msrun_launcher.sh "x" "$ENVCTL_NUM_CARDS" "$ENVCTL_NUM_CARDS" "$ENVCTL_MASTER_ADDR" '
     '"$ENVCTL_MASTER_PORT" "$ENVCTL_NODE_RANK" output/msrun_log False 7200', "msrun",
     [(1, "WORKER_NUM (2nd argument) comes from $ENVCTL_NUM_CARDS"), (1, "JOIN (8th argument) is 'False'")]),
    ('python train.py', "torchrun", [(1, "declares launcher torchrun, but its command never starts")]),
    ('torchrun train.py', "msrun", [(1, "declares launcher msrun")]),
    # `none` promises no launcher, but a pinned launcher inside is still refused.
    ('torchrun --standalone train.py', "none", [(1, "--standalone")]),
    # A launcher after a reserved word on its line, behind a program that runs it (a CPU list,
    # a timeout, a NUMA binding, sudo), after python's own valued options, or inside `bash -c`:
    # still found, so its pin is refused, under `none` too, and not "never starts".
    ('if [ -n "$X" ]; then torchrun --nnodes=1 train.py; fi', "none", [(1, "--nnodes is '1'")]),
    ('for i in 1; do torchrun --standalone train.py; done', "torchrun", [(1, "--standalone")]),
    ('{ torchrun --nnodes=1 train.py; }', "none", [(1, "--nnodes is '1'")]),
    ('taskset -c 0-23 python -m torch.distributed.launch --nnodes=1 --nproc_per_node 8 train.py', "none",
     [(1, "--nnodes is '1'")]),
    ('timeout -s INT 3600 torchrun --nnodes 1 train.py', "torchrun", [(1, "--nnodes is '1'")]),
    ('numactl --cpunodebind=0 --membind 0 torchrun --standalone train.py', "none", [(1, "--standalone")]),
    ('sudo -E env PATH="$PATH" stdbuf -oL deepspeed --num_gpus 8 train.py', "none", [(1, "deepspeed --num_gpus without")]),
    ('python -W ignore -X faulthandler -m torch.distributed.launch --nnodes=1 train.py', "none", [(1, "--nnodes is '1'")]),
    ('time -p torchrun --nnodes=1 train.py', "none", [(1, "--nnodes is '1'")]),
    ('env -u CUDA_VISIBLE_DEVICES torchrun --standalone train.py', "torchrun", [(1, "--standalone")]),
    ('nohup -- torchrun --nnodes=1 train.py &', "none", [(1, "--nnodes is '1'")]),
    # A contract variable the command sets itself where it is read from the environment: with
    # launcher none the processes read MASTER_* (env:// rendezvous) and ENVCTL_*; torch's
    # launchers read PET_*. Exported or not, alone or before a command.
    ('set -e\nexport MASTER_PORT=$(shuf -n 1 -i 10000-65535)\npython train.py', "none",
     [(2, "sets MASTER_PORT itself, which the per-node contract sets on every node: MASTER_PORT is '$(shuf")]),
    ('MASTER_ADDR=localhost MASTER_PORT=29500 python train.py', "none",
     [(1, "sets MASTER_ADDR itself, which the per-node contract sets"), (1, "MASTER_PORT is '29500', a literal")]),
    ('ENVCTL_NODE_RANK=0\npython train.py', "none", [(1, "sets ENVCTL_NODE_RANK itself")]),
    ('export PET_MASTER_PORT=$RANDOM\ntorchrun train.py', "torchrun", [(1, "PET_MASTER_PORT comes from $RANDOM")]),
    ('PET_NNODES=1 python -m torch.distributed.launch train.py', "torch.distributed.launch",
     [(1, "PET_NNODES is '1'")]),
    ('set -e\nbash -c "torchrun --nnodes=1 \\\n  --standalone train.py"', "none",
     [(2, "--nnodes is '1'"), (2, "--standalone")]),
    ('sh -ec \'msrun --worker_num=8 --join=True train.py\'', "msrun", [(1, "--worker_num is '8'"), (1, "no --node_rank"),
                                                                        (1, "no --master_addr")]),
    # Single quotes and a backslash keep `$X` from expanding: the launcher gets the text '$X'.
    ("torchrun --master_port='$ENVCTL_MASTER_PORT' train.py", "torchrun", [(1, "is '$ENVCTL_MASTER_PORT', a literal")]),
    ('torchrun --nnodes=\\$ENVCTL_NNODES train.py', "torchrun", [(1, "is '$ENVCTL_NNODES', a literal")]),
    # A literal the command assigns is called a literal, not a value "each node computes".
    ('MASTER_PORT=6000\ntorchrun --master_port=$MASTER_PORT train.py', "torchrun", [(2, "(MASTER_PORT=6000): a literal")]),
]

MULTI_NODE = [
    ('torchrun --nproc_per_node="$ENVCTL_NUM_CARDS" --master_port="$MASTER_PORT" fastchat/train/train.py', "torchrun"),
    ('python -m torch.distributed.launch --master_addr="$MASTER_ADDR" --nproc_per_node="$ENVCTL_NUM_CARDS" \\\n'
     '  --master_port="$MASTER_PORT" run_clm_sft_with_peft.py --seed "$RANDOM"', "torch.distributed.launch"),
    ('torchrun --nnodes "${ENVCTL_NNODES:-1}" --node_rank "${ENVCTL_NODE_RANK:-0}" '
     '--master_addr "${ENVCTL_MASTER_ADDR:-127.0.0.1}" --master_port "$ENVCTL_MASTER_PORT" train.py', "torch.distributed.launch"),
    ('torchrun --nnodes=$PET_NNODES --rdzv_backend c10d --rdzv_endpoint "$MASTER_ADDR:$MASTER_PORT" train.py', "torchrun"),
    ('python3 -m torch.distributed.run --nproc_per_node 2 train.py', "torchrun"),
    ('python -u -m deepspeed.launcher.launch --world_info="$ENVCTL_DS_WORLD_INFO" --node_rank="$ENVCTL_NODE_RANK" '
     '--master_addr="$ENVCTL_MASTER_ADDR" --master_port="$ENVCTL_MASTER_PORT" main.py --deepspeed ds.json', "deepspeed"),
    ('deepspeed --no_ssh --node_rank="$ENVCTL_NODE_RANK" --hostfile "$ENVCTL_HOSTFILE" --master_addr "$MASTER_ADDR" train.py', "deepspeed"),
    ('msrun --worker_num="$ENVCTL_WORLD_SIZE" --local_worker_num=8 --master_addr="$ENVCTL_MASTER_ADDR" '
     '--master_port="$ENVCTL_MASTER_PORT" --node_rank="$ENVCTL_NODE_RANK" --join=True train.py', "msrun"),
    ('bash scripts/msrun_launcher.sh "run_mindformer.py \\\n  --config $CONFIG" "$ENVCTL_WORLD_SIZE" "$ENVCTL_NUM_CARDS" '
     '"$ENVCTL_MASTER_ADDR" "$ENVCTL_MASTER_PORT" "$ENVCTL_NODE_RANK" output/msrun_log True 7200', "msrun"),
    ('export MASTER_PORT="$ENVCTL_MASTER_PORT"\ntorchrun --master_port "$MASTER_PORT" train.py', "torchrun"),
    ('python check_contract.py', "none"),
    # The contract's values passed on, a default that the contract's value wins over, MASTER_PORT
    # beside a torch launcher (which sets it for its workers from PET_*), other variables.
    ('export MASTER_ADDR="$ENVCTL_MASTER_ADDR" MASTER_PORT=${MASTER_PORT:-29500}\npython train.py', "none"),
    ('export MASTER_PORT=$(shuf -n 1 -i 10000-65535)\ntorchrun --nproc_per_node 8 train.py', "torchrun"),
    ('LR=1e-4 OUTPUT=out-$(date +%s) python train.py', "none"),
    ('command -v deepspeed >/dev/null && python -u -m deepspeed.launcher.launch --world_info="$ENVCTL_DS_WORLD_INFO" '
     '--node_rank="$ENVCTL_NODE_RANK" --master_addr="$ENVCTL_MASTER_ADDR" --master_port="$ENVCTL_MASTER_PORT" t.py', "deepspeed"),
    # The same launchers written correctly behind reserved words, runners and python's options.
    ('if true; then torchrun --nnodes="$ENVCTL_NNODES" train.py; fi', "torchrun"),
    ('taskset -c 0-23 torchrun --nnodes "$ENVCTL_NNODES" --node_rank "$ENVCTL_NODE_RANK" train.py', "torchrun"),
    ('timeout 3600 python -W ignore -m torch.distributed.launch --master_port="$MASTER_PORT" train.py',
     "torch.distributed.launch"),
    ('bash -c "torchrun --nnodes=\\"\\$ENVCTL_NNODES\\" train.py"', "torchrun"),
    ('timeout 60 python check_contract.py', "none"),
    ("echo '$ENVCTL_NNODES' && torchrun --nnodes=\"$ENVCTL_NNODES\"' ' train.py", "torchrun"),
    (["torchrun", "--nnodes", "$ENVCTL_NNODES", "train.py"], "torchrun"),
]


@pytest.mark.parametrize("run, launcher, expected", PINNED, ids=[f"pinned{i}" for i in range(len(PINNED))])
def test_pinned_commands_are_refused_at_their_line(run, launcher, expected):
    pins = pin_problems(run, launcher)
    assert len(pins) == len(expected), [p.message for p in pins]
    for (line, words) in expected:
        assert any(p.line + 1 == line and words in p.message for p in pins), (line, words, [(p.line + 1, p.message) for p in pins])


@pytest.mark.parametrize("run, launcher", MULTI_NODE, ids=[f"multi{i}" for i in range(len(MULTI_NODE))])
def test_multi_node_commands_pass(run, launcher):
    assert pin_problems(run, launcher) == []


def test_an_argument_list_points_at_the_pinned_item():
    pins = pin_problems(["torchrun", "--nnodes", "1", "train.py"], "torchrun")
    assert [(p.line, "--nnodes is '1'" in p.message) for p in pins] == [(2, True)]


@pytest.mark.parametrize("text, expected", [
    ('a "b c" d', [["a", "b c", "d"]]),
    ("a 'b $X' \\\n  c; d && e | f", [["a", "b $X", "c"], ["d"], ["e"], ["f"]]),
    ('X=$(shuf -n 1 -i 1-2) y # comment "x\nz', [["X=$(shuf -n 1 -i 1-2)", "y"], ["z"]]),
    ('echo "$(date +"%Y %m")" `uname -a`', [["echo", '$(date +"%Y %m")', "`uname -a`"]]),
    ('"a \\"q\\" \\$HOME"', [['a "q" $HOME']]),
])
def test_shell_words(text, expected):
    assert [[w.text for w in command] for command in commands(text)] == expected


def test_a_line_continuation_keeps_the_launcher_and_its_script_together_and_lines_are_counted():
    invocation, = find_invocations(commands("set -e\n\npython -m torch.distributed.launch \\\n  --nnodes=2 \\\n  train.py --lr 1"))
    assert invocation.line == 2 and invocation.options["nnodes"].line == 3
    assert [w.text for w in invocation.arguments] == ["train.py", "--lr", "1"]
