#!/usr/bin/env python3
"""Generate text with the tiny base model and a checkpoint written by ``ptune.py``.

Configuration, from the environment (the manifest's params, upper-cased):

    MODEL_DIR       directory of the base model and its tokenizer        (required)
    CHECKPOINT      the OUTPUT_DIR of ptune.py                            (required)
    PROMPT          an ADGEN-style content string                         (required)
    MAX_NEW_TOKENS  how many tokens to generate at most                   (32)

The learned prefix goes in front of ``<s> PROMPT \\n`` (as in training), the trained
adapters are put back on the attention projections, and tokens are chosen greedily until
``</s>`` or MAX_NEW_TOKENS. Offline and deterministic: the same inputs give the same text.
Prints ``prompt: ...`` and ``generated: ...``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

import torch

# The training script holds the pieces both sides share (adapter, prefix, loading, settings).
sys.path.insert(0, str(Path(__file__).resolve().parent))
from ptune import (
    CHECKPOINT_CONFIG,
    CHECKPOINT_WEIGHTS,
    SEPARATOR,
    ConfigError,
    attach_adapters,
    embed_with_prefix,
    env_number,
    env_str,
    fail,
    load_base,
    set_threads,
)


def load_checkpoint(checkpoint: Path, model) -> torch.Tensor:
    """Read the settings and tensors of a ptune.py checkpoint, put its adapters on ``model``,
    and return the prefix. ConfigError if the checkpoint is missing or does not fit."""
    from safetensors.torch import load_file

    config_path, weights_path = checkpoint / CHECKPOINT_CONFIG, checkpoint / CHECKPOINT_WEIGHTS
    for path in (config_path, weights_path):
        if not path.is_file():
            raise ConfigError(f"checkpoint {checkpoint} lacks {path.name} (run ptune.py first)")
    try:
        with open(config_path, encoding="utf-8") as f:
            settings = json.load(f)
        tensors = load_file(str(weights_path))
        rank, alpha = int(settings["lora_rank"]), float(settings["lora_alpha"])
        prefix = tensors.pop("prefix")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"checkpoint {checkpoint} is unreadable: "
                          f"{type(exc).__name__}: {exc}") from None

    hidden = model.config.hidden_size
    if settings.get("vocab_size") != model.config.vocab_size or prefix.shape[-1] != hidden:
        raise ConfigError(f"checkpoint {checkpoint} was trained on a different base model "
                          f"({settings.get('base_model')})")

    adapters = attach_adapters(model, rank, alpha)
    if set(adapters) != set(tensors):
        raise ConfigError(f"checkpoint {checkpoint}: adapter tensors do not match "
                          f"lora_rank={rank} on this model")
    with torch.no_grad():
        for name, param in adapters.items():
            if param.shape != tensors[name].shape:
                raise ConfigError(f"checkpoint {checkpoint}: {name} has shape "
                                  f"{tuple(tensors[name].shape)}, expected {tuple(param.shape)}")
            param.copy_(tensors[name])
    return prefix


@torch.no_grad()
def generate(model, tokenizer, prefix: torch.Tensor, prompt: str, max_new_tokens: int) -> str:
    """Greedy decoding from ``<s> prompt \\n`` with the prefix in front. The whole sequence is
    re-run at each step: at this size that is cheaper to reason about than a cache, and fast."""
    ids = [tokenizer.bos_token_id] + tokenizer(prompt + SEPARATOR,
                                               add_special_tokens=False)["input_ids"]
    limit = model.config.max_position_embeddings - prefix.shape[0]
    new: list[int] = []
    for _ in range(max_new_tokens):
        if len(ids) >= limit:
            break
        inputs_embeds = embed_with_prefix(model, prefix, torch.tensor([ids]))
        logits = model(inputs_embeds=inputs_embeds).logits[0, -1]
        token = int(torch.argmax(logits))  # ties go to the lowest id: deterministic
        if token == tokenizer.eos_token_id:
            break
        ids.append(token)
        new.append(token)
    return tokenizer.decode(new, skip_special_tokens=True)


def main() -> int:
    try:
        model_dir = Path(env_str("MODEL_DIR"))
        checkpoint = Path(env_str("CHECKPOINT"))
        prompt = env_str("PROMPT")
        max_new_tokens = env_number("MAX_NEW_TOKENS", 32, int, 1)
        if not checkpoint.is_dir():
            raise ConfigError(f"checkpoint directory {checkpoint} does not exist "
                              f"(run ptune.py first)")
        tokenizer, model = load_base(model_dir)
        prefix = load_checkpoint(checkpoint, model)
    except ConfigError as exc:
        fail(str(exc))

    set_threads()
    torch.manual_seed(0)
    unknown = sorted({ch for ch in prompt if tokenizer.convert_tokens_to_ids(ch)
                      == tokenizer.unk_token_id})
    if unknown:
        print(f"infer.py: warning: characters outside the vocabulary become <unk>: "
              f"{''.join(unknown)}", file=sys.stderr)

    text = generate(model, tokenizer, prefix, prompt, max_new_tokens)
    print(f"prompt: {prompt}")
    print(f"generated: {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
