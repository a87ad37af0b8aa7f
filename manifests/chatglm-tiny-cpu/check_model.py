#!/usr/bin/env python3
"""Check that the tiny model of ``chatglm-tiny-cpu`` loads and runs, offline.

Usage::

    python check_model.py --model DIR

Loads the tokenizer and the causal LM from DIR without touching the network, runs one
forward pass on a short ADGEN-style prompt, and prints the parameter count and the
vocabulary size. Exits non-zero with a one-line reason when something is missing or broken.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import NoReturn

# Never reach for the Hub: the weights are expected on local disk already.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

# The files a loadable repo must hold (weights in safetensors, a fast tokenizer).
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")

SAMPLE_PROMPT = "类型#上衣*材质#牛仔布*颜色#白色\n"


def fail(message: str) -> NoReturn:
    """Print a clear error and exit with status 1."""
    print(f"check_model: error: {message}", file=sys.stderr)
    sys.exit(1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="directory of the model repo")
    args = parser.parse_args()

    model_dir = Path(args.model)
    if not model_dir.is_dir():
        fail(f"model directory {model_dir} does not exist")
    missing = [name for name in REQUIRED_FILES if not (model_dir / name).is_file()]
    if missing:
        fail(f"model directory {model_dir} lacks {', '.join(missing)}")

    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging
    except ImportError as exc:
        fail(f"a Python package is missing: {exc}")
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS") or 2)))

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(str(model_dir), local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - any load failure is reported the same way
        fail(f"cannot load {model_dir}: {type(exc).__name__}: {exc}")
    model.eval()

    vocab_size = len(tokenizer)
    if model.config.vocab_size != vocab_size:
        fail(f"tokenizer has {vocab_size} tokens but the model expects {model.config.vocab_size}")

    ids = tokenizer(SAMPLE_PROMPT, add_special_tokens=False)["input_ids"]
    if tokenizer.unk_token_id in ids:
        fail("the tokenizer does not know the characters of the sample prompt")
    input_ids = torch.tensor([[tokenizer.bos_token_id] + ids])
    with torch.no_grad():
        logits = model(input_ids=input_ids).logits
    if tuple(logits.shape) != (1, input_ids.shape[1], vocab_size) or not torch.isfinite(logits).all():
        fail(f"unexpected forward output: shape {tuple(logits.shape)}")

    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {model_dir} ({model.config.model_type}, "
          f"{model.config.num_hidden_layers} layers, hidden {model.config.hidden_size})")
    print(f"parameters: {n_params}")
    print(f"vocab size: {vocab_size}")
    print(f"forward: ok, logits {tuple(logits.shape)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
