#!/usr/bin/env python3
"""transformers + PEFT side of the LoRA training-step benchmark (see examples/bench_lora.rs).

    python3 bench_peft.py make DIR              # random-init Qwen3-VL-2B-shaped checkpoint (bf16)
    python3 bench_peft.py bench DIR [--steps N] [--warmup N] [--batch B] [--seq L]

The benchmark matches the Rust example: LoRA r=16, alpha=32, dropout 0.05 on Unsloth's vision +
language attention + MLP pattern; bf16 base on CUDA; AdamW(lr=1e-4, weight_decay=0.01) on the
adapters; a batch of random tokens; loss = mean next-token cross-entropy over every position.
Prints one JSON line.
"""

import argparse
import json
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

NAMES = r"q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj|qkv|proj|linear_fc1|linear_fc2"
PARTS = r"vision|image|visual|patch|language|text"
COMPONENTS = r"self_attn|attention|attn|mlp|feed_forward|ffn|dense"
PATTERN = (
    rf"(?:.*?(?:{PARTS}).*?(?:{COMPONENTS}).*?(?:{NAMES}).*?)"
    rf"|(?:\bmodel\.layers\.[\d]{{1,}}\.(?:{COMPONENTS})\.(?:{NAMES}))"
)


def make(directory: str) -> None:
    """The published Qwen3-VL-2B-Instruct shapes with random weights."""
    config = Qwen3VLConfig(
        text_config=dict(
            vocab_size=151936, hidden_size=2048, intermediate_size=6144, num_hidden_layers=28,
            num_attention_heads=16, num_key_value_heads=8, head_dim=128, max_position_embeddings=262144,
            rms_norm_eps=1e-6, tie_word_embeddings=True,
            rope_parameters=dict(rope_type="default", rope_theta=5000000.0, mrope_section=[24, 20, 20], mrope_interleaved=True),
        ),
        vision_config=dict(
            depth=24, hidden_size=1024, intermediate_size=4096, num_heads=16, patch_size=16,
            spatial_merge_size=2, temporal_patch_size=2, out_hidden_size=2048,
            num_position_embeddings=2304, deepstack_visual_indexes=[5, 11, 17],
        ),
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = Qwen3VLForConditionalGeneration(config).to(torch.bfloat16)
    model.save_pretrained(directory)


def bench(args) -> None:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    started = time.perf_counter()
    model = Qwen3VLForConditionalGeneration.from_pretrained(args.dir, dtype=dtype).to(device)
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules=PATTERN))
    load_seconds = time.perf_counter() - started
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01)
    # Ordinary tokens only: ids from the vision specials on would ask for image inputs.
    vocab = min(model.config.text_config.vocab_size, model.config.vision_start_token_id)
    generator = torch.Generator().manual_seed(0)
    timings = []
    for step in range(args.warmup + args.steps):
        ids = torch.randint(0, vocab, (args.batch, args.seq), generator=generator).to(device)
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimiser.step()
        optimiser.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        if step >= args.warmup:
            timings.append(time.perf_counter() - t0)
    mean = sum(timings) / len(timings)
    adapted = sum(1 for _, m in model.named_modules() if hasattr(m, "lora_A") and "default" in m.lora_A)
    print(json.dumps({
        "impl": "transformers+peft", "device": device, "dtype": str(dtype).removeprefix("torch."),
        "batch": args.batch, "seq": args.seq, "steps": len(timings), "ms_per_step": mean * 1e3,
        "tokens_per_second": args.batch * args.seq / mean, "adapted_layers": adapted,
        "trainable_parameters": sum(p.numel() for p in params), "load_seconds": load_seconds,
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None,
    }))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["make", "bench"])
    parser.add_argument("dir")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=512)
    args = parser.parse_args()
    make(args.dir) if args.command == "make" else bench(args)
