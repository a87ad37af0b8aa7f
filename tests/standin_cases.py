"""What tests/integration/test_standins.py runs for each shipped accelerator manifest, and what
the tutorials say must come out of it.

`Expect` entries are written from the tutorials (../shared/seeds/) and the vendor scripts they
run (CambriconKnight/dev-env-ubuntu tools/*.sh, ModelZoo ptuning/*.sh), not from the manifests:
a call with exactly that command line, working directory and variables must be in the call log
of that run. Where a manifest departs from the tutorial on purpose (as its notes say), the
expectation says so in a comment.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from standin_calls import Drawn

MASTER_PORT = Drawn("--master_port", 10000, 65535, "<shuf 10000-65535>")  # MASTER_PORT=$(shuf -n 1 -i 10000-65535)
SEED = Drawn("--seed", 0, 32767, "<$RANDOM>")


@dataclass(frozen=True)
class Run:
    """`envctl exec ENTRY --set ...`, or with `up_cards` an `envctl up --cards` first. `detach`: a
    server, started with `exec --detach` (it returns once the manifest's `ready:` holds), then
    ended with `envctl stop ENTRY`."""

    entry: str
    sets: tuple[str, ...] = ()
    up_cards: str | None = None
    exit_code: int = 0  # what `envctl exec` must end with (a worker that fails: non-zero)
    detach: bool = False

    @property
    def label(self) -> str:
        sets = "".join(f" --set {s}" for s in self.sets) + (" --detach" if self.detach else "")
        return (f"up --cards {self.up_cards}; " if self.up_cards else "") + f"exec {self.entry}{sets}"


@dataclass(frozen=True)
class Expect:
    """A call the tutorial makes in run `run` ("up" for setup)."""

    run: str
    command: str  # as shlex.join writes it; drawn values as their labels
    cwd: str
    env: dict = field(default_factory=dict)  # variables the call must see (after the container's own)
    workers: int | None = None  # a launcher: how many workers it must start
    prefix: bool = False  # the manifest may append arguments after the tutorial's command


@dataclass(frozen=True)
class Case:
    manifest: str
    variant: str | None
    kind: str  # mlu | npu
    rewrite: tuple[str, ...]  # source values to replace (commit pins, https files)
    runs: tuple[Run, ...]
    drawn: dict = field(default_factory=dict)  # entry -> [Drawn]
    dated: tuple[str, ...] = ()  # entries whose arguments hold `date +%Y%m%d-%H%M%S`
    expect: tuple[Expect, ...] = ()

    @property
    def reference(self) -> str:
        return f"{self.manifest}:{self.variant}" if self.variant else self.manifest

    @property
    def container(self) -> str:
        return f"envctl-{self.manifest}" + (f"-{self.variant}" if self.variant else "")

    @property
    def golden_name(self) -> str:
        return self.manifest + (f"_{self.variant}" if self.variant else "")


CG3 = "/workspace/chatglm3"
CHATGLM3_MLU = Case(
    "chatglm3-mlu", None, "mlu",
    rewrite=("git+https://github.com/THUDM/ChatGLM3@35f21dda9f567",
             "git+https://github.com/CambriconKnight/dev-env-ubuntu@6e9ff98a8538b75bfb0fca3779b8834bf40e095d",
             "https://sdk.cambricon.com/static/Basis/MLU370_X86_ubuntu18.04/deepspeed_mlu-0.9.0-py3-none-any.whl"),
    runs=(Run("infer"), Run("web"), Run("web", ("port=8502",)), Run("train"), Run("train", ("max_steps=7", "lr=1e-2")),
          Run("train", up_cards="2")),
    drawn={"train": [MASTER_PORT]}, dated=("train",),
    expect=(
        # 2.2: port transformers and ChatGLM3, install them
        Expect("up", "python /torch/src/catch/tools/torch_gpu2mlu/torch_gpu2mlu.py -i transformers/", CG3),
        Expect("up", "pip install -e .", f"{CG3}/transformers_mlu"),
        Expect("up", "python /torch/src/catch/tools/torch_gpu2mlu/torch_gpu2mlu.py -i ChatGLM3/", CG3),
        Expect("up", "pip install -r requirements.txt", f"{CG3}/ChatGLM3_mlu"),
        # 3.1.2 and 3.2.1
        Expect("up", "ipython kernel install --name chatglm3-demo --user", f"{CG3}/ChatGLM3_mlu/composite_demo"),
        Expect("up", "pip install -e .", f"{CG3}/tools/accelerate_mlu"),
        # 3.2.3: the tutorial clones ToolAlpaca into finetune_demo; the manifest fetches it to /workspace/chatglm3/ToolAlpaca
        Expect("up", f"python ./scripts/format_tool_alpaca.py --path {CG3}/ToolAlpaca/data/train_data.json",
               f"{CG3}/ChatGLM3_mlu/finetune_demo"),
        # 3.1.1
        Expect("exec infer", "python demo.py", f"{CG3}/ChatGLM3_mlu", {"MLU_VISIBLE_DEVICES": "0,1"}),
        # 3.1.2: `streamlit run main.py` with MODEL_PATH; the manifest names the port
        Expect("exec web", "streamlit run main.py", f"{CG3}/ChatGLM3_mlu/composite_demo",
               {"MODEL_PATH": f"{CG3}/models/chatglm3-6b", "MLU_VISIBLE_DEVICES": "0,1"}, prefix=True),
        # 3.2.3: the tutorial's finetune_pt_multiturn.sh (NUM_GPUS=2)
        Expect("exec train",
               "python -m torch.distributed.launch --nnodes=1 --nproc_per_node=2 --master_port '<shuf 10000-65535>' finetune.py"
               " --train_format multi-turn --train_file formatted_data/tool_alpaca.jsonl --max_seq_length 4096"
               " --preprocessing_num_workers 1 --model_name_or_path /workspace/chatglm3/models/chatglm3-6b"
               " --output_dir 'output/tool_alpaca_pt-<date>-128-2e-2' --per_device_train_batch_size 1"
               " --gradient_accumulation_steps 16 --max_steps 500 --logging_steps 1 --save_steps 250 --learning_rate 2e-2"
               " --pre_seq_len 128",
               f"{CG3}/ChatGLM3_mlu/finetune_demo", {"MLU_VISIBLE_DEVICES": "0,1"}, workers=2),
        # the same on the one device of `up --cards 2`: one process, device 0 inside
        Expect("up --cards 2; exec train", "python -m torch.distributed.launch --nnodes=1 --nproc_per_node=1 --master_port",
               f"{CG3}/ChatGLM3_mlu/finetune_demo", {"MLU_VISIBLE_DEVICES": "0", "ENVCTL_NUM_CARDS": "1"}, workers=1, prefix=True),
    ),
)

CLA = "/workspace/chinese-llama-alpaca-2"
REPO_MLU = f"{CLA}/Chinese-LLaMA-Alpaca-2_mlu"


def _alpaca_training(script: str, size: str, nproc: int, data: str) -> str:
    """run_finetuning_13b.sh / run_pretraining_13b.sh (their launcher and first arguments)."""
    model = f"{CLA}/models/chinese_alpaca_2_model_to_train_{size}"
    return (f"python -m torch.distributed.launch --master_addr=127.0.0.1 --nproc_per_node={nproc} --master_port=29501 {script}"
            f" --deepspeed ds_zero3_no_offload.json --model_name_or_path {model} --tokenizer_name_or_path {model}"
            f" --dataset_dir {data}")


ALPACA_REWRITE = ("git+https://github.com/CambriconKnight/dev-env-ubuntu@e8ea80f8381f952983e4e31ae7928a3d9d3fb356",
                  "https://sdk.cambricon.com/static/Basis/MLU370_X86_ubuntu18.04/cndsp-0.8.0-py3-none-any.whl")
ALPACA_13B = Case(
    "chinese-alpaca2-mlu", "13b", "mlu", rewrite=ALPACA_REWRITE,
    runs=(Run("infer", detach=True), Run("eval"), Run("eval", ("output_dir=/workspace/chinese-llama-alpaca-2/eval_2",)),
          Run("sft"),
          Run("merge"), Run("pretrain"), Run("merge-pretrain"), Run("sft", up_cards="0,1,2,3")),
    drawn={"sft": [SEED], "pretrain": [SEED]},
    expect=(
        # deploy_env.sh
        Expect("up", "pip install numpy --upgrade", "/workspace/chinese-llama-alpaca-2/Chinese-LLaMA-Alpaca-2_mlu/cambricon"),
        Expect("up", "pip install -e .", f"{CLA}/open-codes-mlu/accelerate_0.20.3_mlu"),
        Expect("up", "pip install -e .", f"{CLA}/open-codes-mlu/transformers_4.30.0_llama_mlu"),
        Expect("up", "pip install -e .", f"{CLA}/open-codes-mlu/peft_0.3.0.dev0_mlu"),
        Expect("up", "pip install -r requirements.txt", REPO_MLU),
        # run_inference_13b.sh
        Expect("exec infer --detach", f"python gradio_demo.py --base_model {CLA}/models/chinese_alpaca_2_model_to_train_13b --gpus 0,1",
               f"{REPO_MLU}/scripts/inference", {"MLU_VISIBLE_DEVICES": "0,1"}),
        # run_mlu_eval.sh (eval_output from env.sh)
        Expect("exec eval", f"python eval.py --model_path {CLA}/models/chinese_alpaca_2_model_to_train_13b --cot False"
               " --few_shot False --with_prompt True --constrained_decoding True --temperature 0.2 --n_times 1 --ntrain 5"
               f" --do_save_csv False --do_test False --output_dir {REPO_MLU}/eval_output",
               f"{REPO_MLU}/scripts/ceval", {"MLU_VISIBLE_DEVICES": "0,1"}),
        # run_finetuning_13b.sh: 16 devices, CNCL_MLULINK_DISABLE=1, DATASETS_DIR=$ROOT_PATH/data/drama. Its output_dir is
        # env.sh's train_output; the manifest uses the tutorial text's train_output_finetuning_13b.
        Expect("exec sft", _alpaca_training("run_clm_sft_with_peft.py", "13b", 16, f"{REPO_MLU}/data/drama"),
               f"{REPO_MLU}/scripts/training", {"CNCL_MLULINK_DISABLE": "1"}, workers=16, prefix=True),
        # merge_trainmodel_13b.sh (run from the repository root; cambricon/sample_lora_13b given absolute)
        Expect("exec merge", f"python scripts/merge_llama2_with_chinese_lora_low_mem_2.py --base_model"
               f" {CLA}/models/chinese_alpaca_2_model_to_train_13b --lora_model {REPO_MLU}/cambricon/sample_lora_13b"
               f" --output_type huggingface --output_dir {CLA}/models/chinese_alpaca_2_model_train_done_13b", REPO_MLU),
        # run_pretraining_13b.sh: DATASETS_TXT_DIR=$ROOT_PATH/data/drama_txt_data
        Expect("exec pretrain", _alpaca_training("run_clm_pt_with_peft.py", "13b", 16, f"{REPO_MLU}/data/drama_txt_data")
               + f" --data_cache_dir {REPO_MLU}/data/pt_train_cache", f"{REPO_MLU}/scripts/training",
               {"CNCL_MLULINK_DISABLE": "1"}, workers=16, prefix=True),
        # merge_pretrain_model_13b.sh
        Expect("exec merge-pretrain", f"python scripts/merge_llama2_with_chinese_lora_low_mem_2.py --base_model"
               f" {CLA}/models/chinese_alpaca_2_model_to_train_13b --lora_model {REPO_MLU}/cambricon/sample_lora_13b"
               f" --output_type huggingface --output_dir {CLA}/models/chinese_alpaca_2_model_pretrain_done_13b", REPO_MLU),
    ),
)

# "7b模型指定1芯即可": the 7B variant, inference and C-Eval on one device.
ALPACA_7B = Case(
    "chinese-alpaca2-mlu", "7b", "mlu", rewrite=ALPACA_REWRITE, runs=(Run("infer", detach=True), Run("eval")),
    expect=(
        Expect("exec infer --detach", f"python gradio_demo.py --base_model {CLA}/models/chinese_alpaca_2_model_to_train_7b --gpus 0",
               f"{REPO_MLU}/scripts/inference", {"MLU_VISIBLE_DEVICES": "0"}),
        Expect("exec eval", f"python eval.py --model_path {CLA}/models/chinese_alpaca_2_model_to_train_7b", f"{REPO_MLU}/scripts/ceval",
               {"MLU_VISIBLE_DEVICES": "0"}, prefix=True),
    ),
)

PT = "/workspace/ChatGLM2-6B/ptuning"
CHATGLM2_NPU = Case(
    "chatglm2-npu", None, "npu",
    rewrite=("git+https://gitee.com/ascend/ModelZoo-PyTorch.git@ea43941e16a81c5bb907d8e8193238b21600fd3f",
             "git+https://gitee.com/ascend/DeepSpeed.git@5c7c89930f0b70ea586d5db63f8e66477d5d9d9f",
             "https://cloud.tsinghua.edu.cn/f/b3f119a008264b1cabd1/?dl=1"),
    runs=(Run("preprocess"), Run("preprocess", ("predict=true",)), Run("ptune"), Run("ptune", ("max_steps=10", "lr=1e-2")),
          Run("finetune"), Run("evaluate"), Run("finetune", up_cards="4,5")),
    drawn={"finetune": [MASTER_PORT]},
    expect=(
        # 准备环境: install the requirements, deepspeed 0.9.2 and deepspeed_npu
        Expect("up", "pip install -r requirements.txt", "/workspace/ChatGLM2-6B"),
        Expect("up", "pip3 install deepspeed==0.9.2", "/workspace/deepspeed_npu"),
        Expect("up", "pip3 install .", "/workspace/deepspeed_npu"),
        # preprocess.sh (its output_dir ends in "-$LR" with LR unset there; the manifest drops the dash)
        Expect("exec preprocess", "python preprocess.py --do_train --train_file AdvertiseGen/train.json --test_file"
               " AdvertiseGen/dev.json --prompt_column content --response_column summary --model_name_or_path"
               " /workspace/ChatGLM2-6B/model --overwrite_cache --output_dir ./output/adgen-chatglm-6b-ft"
               " --max_source_length 1024 --max_target_length 1024", PT, {"ASCEND_TOOLKIT_HOME": "/usr/local/Ascend/ascend-toolkit/latest"}),
        # train.sh (model path: the README's model/; --NPU_VISIBLE_DEVICES 1 left out, envctl selects the card)
        Expect("exec ptune", "python3 main_without_tokenizer.py --do_train --train_file AdvertiseGen/train.json"
               " --validation_file AdvertiseGen/dev.json --preprocessing_num_workers 10 --prompt_column content"
               " --response_column summary --overwrite_cache --model_name_or_path /workspace/ChatGLM2-6B/model"
               " --output_dir output/adgen-chatglm2-6b-pt-128-2e-2 --overwrite_output_dir --max_source_length 1024"
               " --max_target_length 1024 --per_device_train_batch_size 1 --per_device_eval_batch_size 1"
               " --gradient_accumulation_steps 16 --predict_with_generate --max_steps 3000 --logging_steps 10 --save_steps 1000"
               " --learning_rate 2e-2 --pre_seq_len 128", PT, {"ASCEND_RT_VISIBLE_DEVICES": "0"}),
        # ds_train_finetune.sh: 8 cards, ZeRO-2
        Expect("exec finetune", "deepspeed --num_gpus=8 --master_port '<shuf 10000-65535>' main_without_tokenizer.py"
               " --deepspeed deepspeed.json --do_train --train_file AdvertiseGen/train.json --test_file AdvertiseGen/dev.json"
               " --prompt_column content --response_column summary --model_name_or_path /workspace/ChatGLM2-6B/model"
               " --output_dir ./output/adgen-chatglm2-6b-ft-1e-4 --overwrite_output_dir --max_source_length 4096"
               " --max_target_length 4096 --per_device_train_batch_size 1 --per_device_eval_batch_size 1"
               " --gradient_accumulation_steps 1 --predict_with_generate --max_steps 1000 --logging_steps 1 --save_steps 1000"
               " --learning_rate 1e-4 --fp16", PT, {"ASCEND_RT_VISIBLE_DEVICES": "0,1,2,3,4,5,6,7"}, workers=8),
        Expect("up --cards 4,5; exec finetune", "deepspeed --num_gpus=2 --master_port '<shuf 10000-65535>' main_without_tokenizer.py",
               PT, {"ASCEND_RT_VISIBLE_DEVICES": "0,1", "ENVCTL_NUM_CARDS": "2"}, workers=2, prefix=True),
        # evaluate_finetune.sh
        Expect("exec evaluate", "python3 main_without_tokenizer.py --do_predict --validation_file AdvertiseGen/dev.json"
               " --test_file AdvertiseGen/dev.json --overwrite_cache --prompt_column content --response_column summary"
               " --model_name_or_path ./output/adgen-chatglm2-6b-ft-1e-4/checkpoint-1000 --output_dir"
               " ./output/adgen-chatglm2-6b-ft-1e-4 --overwrite_output_dir --max_source_length 256 --max_target_length 256"
               " --per_device_eval_batch_size 1 --predict_with_generate --fp16_full_eval", PT, {"ASCEND_RT_VISIBLE_DEVICES": "0"}),
    ),
)

MF = "/workspace/mindformers"
MSRUN = "msrun --worker_num=8 --local_worker_num=8 --master_port=8118 --log_dir=output/msrun_log --join=True --cluster_time_out=7200"
MINDFORMERS = Case(
    "chatglm3-npu-mindformers", None, "npu",
    rewrite=("https://cloud.tsinghua.edu.cn/f/b3f119a008264b1cabd1/?dl=1",
             "https://ascend-repo-modelzoo.obs.cn-east-2.myhuaweicloud.com/XFormer_for_mindspore/glm3/glm3_6b.ckpt",
             "https://ascend-repo-modelzoo.obs.cn-east-2.myhuaweicloud.com/XFormer_for_mindspore/glm3/tokenizer.model",
             "https://ascend-repo-modelzoo.obs.cn-east-2.myhuaweicloud.com/XFormer_for_mindspore/glm3/tool_alpaca.jsonl",
             "https://raw.githubusercontent.com/THUDM/ChatGLM3/7cd5bc78bd6232d02764b60b33874bb2d63a0df0/finetune_chatmodel_demo/scripts/format_tool_alpaca.py"),
    runs=(Run("convert"), Run("finetune"), Run("format-tool-alpaca"), Run("finetune-multiturn"),
          Run("finetune-multiturn", ("train_dataset_dir=/workspace/data/formatted_data/tool_alpaca.jsonl",)), Run("merge"),
          Run("predict"), Run("predict", ("mode=multirole",)), Run("finetune", up_cards="0,1,2,3"),
          # a worker that fails (its dataset is missing) fails the entrypoint: msrun --join=True exits 1
          Run("finetune", ("train_dataset_dir=/workspace/data/AdvertiseGen/missing.json",), exit_code=1)),
    expect=(
        # build.sh installs MindFormers from the tree
        Expect("up", "pip install .", MF),
        # 多卡微调: msrun_launcher.sh "run_mindformer.py --config ... --run_mode finetune" (the manifest also passes the
        # checkpoint and dataset instead of editing them into the config, and --use_parallel True)
        Expect("exec finetune", f"{MSRUN} run_mindformer.py --config configs/glm3/run_glm3_6b_finetune_2k_800T_A2_64G.yaml"
               " --load_checkpoint /data/glm3/glm3_6b.ckpt --train_dataset_dir /workspace/data/AdvertiseGen/train.json"
               " --use_parallel True --run_mode finetune", MF,
               {"ASCEND_RT_VISIBLE_DEVICES": "0,1,2,3,4,5,6,7", "MS_ASCEND_CHECK_OVERFLOW_MODE": "INFNAN_MODE"}, workers=8),
        Expect("up --cards 0,1,2,3; exec finetune", "msrun --worker_num=4 --local_worker_num=4", MF,
               {"ASCEND_RT_VISIBLE_DEVICES": "0,1,2,3", "ENVCTL_NUM_CARDS": "4"}, workers=4, prefix=True),
        Expect("exec finetune-multiturn", f"{MSRUN} run_mindformer.py --config"
               " configs/glm3/run_glm3_6b_multiturn_finetune_800T_A2_64G.yaml --load_checkpoint /data/glm3/glm3_6b.ckpt"
               " --train_dataset_dir /data/tool_alpaca/tool_alpaca.jsonl --use_parallel True --run_mode finetune", MF, workers=8),
        # format_tool_alpaca.py --path ToolAlpaca/data/train_data.json (writes formatted_data/ under the working directory)
        Expect("exec format-tool-alpaca", "python /opt/envctl/scripts/format_tool_alpaca.py --path /data/ToolAlpaca/data/train_data.json",
               "/workspace/data"),
        # 分布式训练/微调权重合并
        Expect("exec merge", "python mindformers/tools/transform_ckpt.py --src_ckpt_strategy output/strategy/ --src_ckpt_dir"
               " output/checkpoint/ --dst_ckpt_dir output/target_checkpoint/ --prefix glm3_6b", MF),
    ),
)

FASTCHAT = Case(
    "chatglm2-npu-fastchat", None, "npu", rewrite=(),
    runs=(Run("infer"), Run("infer", ("temperature=0.7",)), Run("web", detach=True), Run("train"), Run("official-infer"),
          Run("official-web", detach=True), Run("train", up_cards="6")),
    expect=(
        Expect("up", "pip install -r requirements.txt", "/workspace/ChatGLM2-6B"),
        Expect("up", "pip3 install --upgrade pip", "/workspace/FastChat"),
        Expect("up", "pip3 install -e '.[model_worker,webui]'", "/workspace/FastChat"),
        Expect("up", "pip install gradio==3.41.0", "/workspace/FastChat"),
        Expect("exec infer", "python -m fastchat.serve.cli --model-path /home/models/chatglm2-6b/ --device npu --temperature 1e-6",
               "/workspace/FastChat", {"ASCEND_RT_VISIBLE_DEVICES": "0"}),
        # three shells: controller, model_worker, gradio_web_server (web.sh adds addresses and ports)
        Expect("exec web --detach", "python3 -m fastchat.serve.controller", "/workspace/FastChat", prefix=True),
        Expect("exec web --detach", "python3 -m fastchat.serve.model_worker --model-path /home/models/chatglm2-6b/ --device npu",
               "/workspace/FastChat", {"ASCEND_RT_VISIBLE_DEVICES": "0"}, prefix=True),
        Expect("exec web --detach", "python3 -m fastchat.serve.gradio_web_server", "/workspace/FastChat", prefix=True),
        Expect("exec train", "torchrun --nproc_per_node=2 --master_port=20001 fastchat/train/train.py --model_name_or_path"
               " /home/models/chatglm2-6b --data_path /home/datasets/evol-instruct-chinese/evol-instruct-chinese_subset.json"
               " --fp16 True --output_dir output_chatglm --num_train_epochs 5 --per_device_train_batch_size 8"
               " --per_device_eval_batch_size 1 --gradient_accumulation_steps 1 --evaluation_strategy no --save_strategy epoch"
               " --learning_rate 5e-5 --weight_decay 0. --lr_scheduler_type cosine --logging_steps 1 --fsdp 'full_shard auto_wrap'"
               " --model_max_length 512 --gradient_checkpointing True --lazy_preprocess True --trust_remote_code True"
               " --padding_side left", "/workspace/FastChat", {"ASCEND_RT_VISIBLE_DEVICES": "0,1"}, workers=2),
        Expect("up --cards 6; exec train", "torchrun --nproc_per_node=1 --master_port=20001 fastchat/train/train.py",
               "/workspace/FastChat", {"ASCEND_RT_VISIBLE_DEVICES": "0", "ENVCTL_NUM_CARDS": "1"}, workers=1, prefix=True),
        Expect("exec official-web --detach", "python web_demo.py", "/workspace/chatglm2-official", {"ASCEND_RT_VISIBLE_DEVICES": "0"}),
    ),
)

CASES = (CHATGLM3_MLU, ALPACA_13B, ALPACA_7B, CHATGLM2_NPU, MINDFORMERS, FASTCHAT)
