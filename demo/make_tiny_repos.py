#!/usr/bin/env python3
"""Write the two tiny Hugging Face-style repos of the ``chatglm-tiny-cpu`` workflow.

Usage::

    python make_tiny_repos.py OUT_DIR

writes, as plain files:

``OUT_DIR/model/``
    A tiny LLaMA-architecture causal LM (hidden 64, 2 layers, 4 heads) standing in for ChatGLM,
    with random weights from a fixed seed (config.json, generation_config.json,
    model.safetensors), and a character-level tokenizer (tokenizer.json,
    tokenizer_config.json, special_tokens_map.json) whose vocabulary is every character of
    the dataset plus ``<pad>``, ``<s>``, ``</s>`` and ``<unk>``.

``OUT_DIR/dataset/AdvertiseGen/``
    ``train.json`` and ``dev.json`` in ADGEN's format: one JSON object per line,
    ``{"content": "类型#上衣*材质#牛仔布*...", "summary": "..."}``, made from small attribute
    tables and templated summaries.

Everything is deterministic: a second run writes the same bytes, so the files can be served
by a mirror and pinned by sha256. Only the standard library, torch, transformers, tokenizers
and safetensors are imported, so the script runs inside the CPU reference image.
"""

from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path

# Seeds: one for the dataset's choices, one for the model's initial weights.
DATA_SEED = 20240601
MODEL_SEED = 0

N_TRAIN = 200
N_DEV = 20

# What the model repo holds once written.
MODEL_FILES = ("config.json", "generation_config.json", "model.safetensors",
               "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json")

# Special tokens, in id order. Ids 0..3 are fixed so the model config can name them.
PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
SPECIAL_TOKENS = [PAD, BOS, EOS, UNK]

# The separator between prompt (content) and target (summary) used by ptune.py / infer.py.
# It is not in the data itself, so it is added to the vocabulary explicitly.
EXTRA_CHARS = ["\n"]

# --- attribute tables -----------------------------------------------------------------------
# Each value carries a short phrase used by the summary templates, so that what a summary
# says follows from the content (something a model can learn), while the template and the
# optional attributes vary.

TYPES = {
    "上衣": "上衣",
    "衬衫": "衬衫",
    "卫衣": "卫衣",
    "外套": "外套",
    "连衣裙": "连衣裙",
    "半身裙": "半身裙",
    "裤子": "裤子",
}

MATERIALS = {
    "牛仔布": "挺括耐穿，越穿越有味道",
    "棉": "柔软透气，贴身穿着也很舒服",
    "雪纺": "轻盈飘逸，走动间自带灵动感",
    "针织": "细腻有弹性，包裹感恰到好处",
    "羊毛": "保暖亲肤，寒冷天气也能从容应对",
    "亚麻": "清爽透气，夏天穿着格外自在",
}

COLORS = {
    "白色": "干净清爽",
    "黑色": "低调百搭",
    "蓝色": "清新沉静",
    "红色": "热情显白",
    "粉色": "温柔减龄",
    "灰色": "高级耐看",
}

STYLES = {
    "简约": "线条利落，不做多余修饰",
    "休闲": "随性舒适，日常出行毫无压力",
    "复古": "带着一丝怀旧的韵味",
    "街头": "酷感十足，轻松穿出态度",
    "通勤": "干练得体，上班约会都合适",
    "甜美": "俏皮可爱，满满少女感",
}

PATTERNS = {
    "纯色": "纯色设计经典不过时",
    "条纹": "条纹元素增添层次感",
    "格子": "格子图案尽显学院气息",
    "印花": "精致印花点亮整体造型",
}

# Summary templates. Fields: t (type), m (material), md (material phrase), c (color),
# cd (color phrase); the style and pattern sentences are appended when present.
TEMPLATES = [
    "这款{c}{t}采用{m}面料，{md}。{c}{cd}，",
    "{m}材质的{t}，{md}。选用{c}，{cd}，",
    "{c}的{t}{cd}，{m}面料{md}，",
]


def make_example(rng: random.Random) -> dict:
    """Draw one content/summary pair from the attribute tables."""
    t = rng.choice(sorted(TYPES))
    m = rng.choice(sorted(MATERIALS))
    c = rng.choice(sorted(COLORS))
    style = rng.choice(sorted(STYLES)) if rng.random() < 0.7 else None
    pattern = rng.choice(sorted(PATTERNS)) if rng.random() < 0.4 else None

    # ADGEN's content: key#value pairs joined by '*'.
    pairs = [("类型", t), ("材质", m), ("颜色", c)]
    if style:
        pairs.append(("风格", style))
    if pattern:
        pairs.append(("图案", pattern))
    content = "*".join(f"{k}#{v}" for k, v in pairs)

    summary = rng.choice(TEMPLATES).format(t=TYPES[t], m=m, md=MATERIALS[m], c=c, cd=COLORS[c])
    if pattern:
        summary += PATTERNS[pattern] + "，"
    if style:
        summary += f"{style}风格{STYLES[style]}。"
    else:
        summary += "怎么搭配都好看。"
    return {"content": content, "summary": summary}


def make_dataset() -> tuple[list[dict], list[dict]]:
    """Return (train, dev) examples, drawn from one seeded generator."""
    rng = random.Random(DATA_SEED)
    train = [make_example(rng) for _ in range(N_TRAIN)]
    dev = [make_example(rng) for _ in range(N_DEV)]
    return train, dev


def write_jsonl(path: Path, rows: list[dict]) -> None:
    """Write rows as UTF-8 JSON lines with a fixed key order and '\\n' line ends."""
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.writelines(json.dumps({"content": row["content"], "summary": row["summary"]},
                                ensure_ascii=False) + "\n" for row in rows)


def build_tokenizer(texts: list[str], out: Path):
    """Build and save a character-level WordLevel tokenizer; return the transformers wrapper."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    chars = sorted(set("".join(texts)) | set(EXTRA_CHARS))
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for ch in chars:
        vocab.setdefault(ch, len(vocab))

    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    # Every single character (newline included) becomes its own piece ...
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    # ... and decoding glues the pieces back together without spaces.
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens(SPECIAL_TOKENS)

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS, eos_token=EOS, unk_token=UNK, pad_token=PAD,
        model_max_length=256,
        # Our scripts place <s> and </s> themselves; plain encode adds nothing.
        add_bos_token=False, add_eos_token=False,
    )
    fast.save_pretrained(str(out))

    # Portability: name the generic fast-tokenizer class (transformers 4.x and 5.x both load
    # it; 5.x would otherwise write its own "TokenizersBackend"), and write the
    # special_tokens_map.json that transformers 5.x no longer writes but older loaders read.
    config_path = out / "tokenizer_config.json"
    with open(config_path, encoding="utf-8") as f:
        config = json.load(f)
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config.pop("backend", None)
    write_json(config_path, config)
    write_json(out / "special_tokens_map.json",
               {"bos_token": BOS, "eos_token": EOS, "pad_token": PAD, "unk_token": UNK})
    return fast


def fill_weights(model, std: float, seed: int) -> None:
    """Give every weight matrix portable random values: uniform with standard deviation
    ``std``, made from integers of torch's seeded Mersenne Twister and one exact scaling.
    Unlike ``normal_``, whose vectorised CPU kernels may round differently from one
    processor to another, this yields the same bits on every machine. Norm weights are 1."""
    import torch

    steps = 2 ** 20  # integers in [-steps, steps) are exact in float32
    bound = std * 3 ** 0.5  # a uniform on [-bound, bound] has standard deviation std
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            if name.endswith("norm.weight"):
                param.fill_(1.0)
                continue
            ints = torch.randint(-steps, steps, tuple(param.shape), generator=generator)
            param.copy_(ints.to(torch.float32) * (bound / steps))


def build_model(vocab_size: int, out: Path) -> None:
    """Create the tiny LLaMA-architecture model with seeded random weights and save it as
    safetensors."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    # Fan-in scaling, 1/sqrt(hidden) = 0.125, rather than the usual 0.02 (a value meant for
    # wide models): the model stays random and frozen during P-Tuning, and at 0.02 its output
    # layer is so flat (logits within about +-1) that nothing trained in front of it can lower
    # the loss by much. At 0.125 the first loss is still about ln(vocab), and 30 steps of
    # ptune.py lower it by roughly 30%.
    hidden = 64
    init_std = hidden ** -0.5
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=256,
        pad_token_id=SPECIAL_TOKENS.index(PAD),
        bos_token_id=SPECIAL_TOKENS.index(BOS),
        eos_token_id=SPECIAL_TOKENS.index(EOS),
        tie_word_embeddings=False,
        initializer_range=init_std,
    )
    torch.manual_seed(MODEL_SEED)
    model = LlamaForCausalLM(config)
    fill_weights(model, init_std, MODEL_SEED)
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
        do_sample=False,
    )
    model.save_pretrained(str(out), safe_serialization=True)


def write_json(path: Path, data, sort_keys: bool = True) -> None:
    """Write JSON with a fixed layout (UTF-8, indent 2, trailing newline)."""
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(json.dumps(data, ensure_ascii=False, indent=2, sort_keys=sort_keys) + "\n")


def canonicalize_json(path: Path, sort_keys: bool = True) -> None:
    """Rewrite a JSON file written by a library with a fixed layout, and (by default) sorted
    keys, so its bytes never depend on dict/set ordering inside that library."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    write_json(path, data, sort_keys)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1].startswith("-"):
        print("usage: make_tiny_repos.py OUT_DIR", file=sys.stderr)
        return 2
    out = Path(argv[1])
    model_dir = out / "model"
    data_dir = out / "dataset" / "AdvertiseGen"
    model_dir.mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)

    train, dev = make_dataset()
    write_jsonl(data_dir / "train.json", train)
    write_jsonl(data_dir / "dev.json", dev)

    texts = [r["content"] + r["summary"] for r in train + dev]
    tokenizer = build_tokenizer(texts, model_dir)
    build_model(len(tokenizer), model_dir)

    # JSON files written by the libraries: normalise their key order and layout.
    # tokenizer.json keeps the tokenizers library's own order (vocabulary by id, which that
    # library already writes deterministically); only its layout is normalised.
    for name in ("config.json", "generation_config.json"):
        canonicalize_json(model_dir / name)
    canonicalize_json(model_dir / "tokenizer.json", sort_keys=False)

    # safetensors writes its file owner-only (0600); give every file the ordinary mode the
    # umask allows, so a mirror running as another user can serve it.
    umask = os.umask(0)
    os.umask(umask)
    for path in [data_dir / "train.json", data_dir / "dev.json"] + [
            model_dir / name for name in MODEL_FILES]:
        os.chmod(path, 0o666 & ~umask)
        print(f"{path.relative_to(out)}  {path.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    # The repos are written offline; never let the libraries reach for the Hub.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(main(sys.argv))
