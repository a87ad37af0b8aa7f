"""ChatGLM2-6B's own chat API on an Ascend NPU: the tutorial's first ("official version")
example, as a script. Asks the tutorial's two questions, keeping the history between them.
Written for envctl's chatglm2-npu-fastchat manifest.
"""

import argparse

from transformers import AutoModel, AutoTokenizer

try:  # registers the "npu" device with torch; recent transformers also import it themselves
    import torch_npu  # noqa: F401
except ImportError:
    pass


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="directory of THUDM/chatglm2-6b")
    parser.add_argument("--device", default="npu")
    parser.add_argument("questions", nargs="*", default=["你好", "NPU和GPU有什么区别"])
    args = parser.parse_args()

    tokenizer = AutoTokenizer.from_pretrained(args.model, trust_remote_code=True)
    model = AutoModel.from_pretrained(args.model, trust_remote_code=True, device=args.device).eval()
    history = []
    for question in args.questions:
        response, history = model.chat(tokenizer, question, history=history)
        print(f"问: {question}\n答: {response}", flush=True)


if __name__ == "__main__":
    main()
