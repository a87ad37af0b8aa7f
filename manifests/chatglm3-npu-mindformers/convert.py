"""Convert the Hugging Face ChatGLM3-6B weights to a MindSpore checkpoint for MindFormers.

The model card's two steps in one: load the PyTorch model with transformers, then save every
parameter under the same name in a MindSpore .ckpt, except that the word-embedding table is
called `embedding_table` on the MindSpore side. Written for envctl's chatglm3-npu-mindformers
manifest; needs torch and transformers next to mindspore (CPU is enough).
"""

import argparse

import mindspore as ms
import torch
from transformers import AutoModel


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="directory of THUDM/chatglm3-6b")
    parser.add_argument("--output", required=True, help="path of the .ckpt to write")
    parser.add_argument("--listing", help="optionally write 'name shape dtype' lines here")
    return parser.parse_args()


def main():
    args = parse_args()
    model = AutoModel.from_pretrained(args.model, trust_remote_code=True)
    params = []
    lines = []
    for name, tensor in model.state_dict().items():
        if "word_embeddings.weight" in name:
            name = name.replace("word_embeddings.weight", "embedding_table")
        lines.append(f"{name} {tuple(tensor.shape)} {tensor.dtype}")
        # numpy has no bfloat16; the published weights are float16, so this only guards odd inputs.
        if tensor.dtype == torch.bfloat16:
            tensor = tensor.to(torch.float32)
        params.append({"name": name, "data": ms.Tensor(tensor.cpu().numpy())})
    if args.listing:
        with open(args.listing, "w", encoding="utf-8") as out:
            out.write("\n".join(lines) + "\n")
    ms.save_checkpoint(params, args.output)
    print(f"wrote {len(params)} parameters to {args.output}")


if __name__ == "__main__":
    main()
