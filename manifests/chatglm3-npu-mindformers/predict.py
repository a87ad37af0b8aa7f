"""ChatGLM3-6B generation with MindFormers on one Ascend card (the model card's two inference
examples: single questions, and a multi-role conversation that starts with a system prompt).

Written for envctl's chatglm3-npu-mindformers manifest; it only calls the MindFormers API the
model card documents (ChatGLM3Tokenizer.build_chat_input, AutoConfig, AutoModel.generate).
"""

import argparse

import mindspore as ms
from mindformers import AutoConfig, AutoModel, ChatGLM3Tokenizer

SINGLE = ["你好", "请介绍一下华为"]
MULTIROLE = [
    ("system", "假设你现在是一个导游，请尽可能贴近这个角色回答问题。"),
    ("user", "我打算1月份去海南玩，可以介绍一下海南有哪些好玩的，好吃的么？"),
    ("user", "哪里适合冲浪和潜水呢？"),
    ("user", "可以帮我做一份旅游攻略吗？"),
]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True, help="e.g. configs/glm3/predict_glm3_6b.yaml")
    parser.add_argument("--checkpoint", required=True, help="glm3_6b.ckpt (a single, merged checkpoint)")
    parser.add_argument("--tokenizer", required=True, help="tokenizer.model")
    parser.add_argument("--mode", choices=["single", "multirole"], default="single")
    parser.add_argument("--device-id", type=int, default=0)
    parser.add_argument("prompts", nargs="*", help="questions for --mode single (default: the model card's)")
    return parser.parse_args()


def answer(model, tokenizer, config, text, history, role):
    """Generate one reply; returns the decoded text after the prompt."""
    ids = tokenizer.build_chat_input(text, history=history, role=role)["input_ids"]
    out = model.generate(ids, do_sample=False, top_k=1, top_p=1, num_beams=1, temperature=1,
                         max_length=config.seq_length)
    # generate returns prompt + reply (+ end token); keep only the reply.
    return tokenizer.decode(out[0][len(ids[0]):-1])


def main():
    args = parse_args()
    ms.set_context(mode=ms.GRAPH_MODE, device_target="Ascend", device_id=args.device_id)
    tokenizer = ChatGLM3Tokenizer(args.tokenizer)
    config = AutoConfig.from_pretrained(args.config)
    config.checkpoint_name_or_path = args.checkpoint
    model = AutoModel.from_config(config)

    if args.mode == "single":
        # The first generate call includes graph compilation; later ones show the real speed.
        for text in args.prompts or SINGLE:
            print(f"> {text}", flush=True)
            print(answer(model, tokenizer, config, text, [], "user"), flush=True)
        return

    history = []
    for role, text in MULTIROLE:
        print(f"[{role}] {text}", flush=True)
        reply = answer(model, tokenizer, config, text, history, role)
        history.append({"role": role, "content": text})
        print(reply, flush=True)
        # Plain chat replies go back into the history as the assistant's turn (no tool calls here).
        history.append({"role": "assistant", "metadata": "", "content": reply.strip()})


if __name__ == "__main__":
    main()
