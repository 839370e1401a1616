#!/usr/bin/env python3
"""Opt-in interop check: transformers loads a `verdict export --format merged` directory and
computes the same logits as transformers + PEFT applying the same adapter.

    check_merged_transformers.py tiny  VERDICT_BIN REPO WORK
        tiny_a + the PEFT-made fixture adapter (crates/verdict-lora/tests/fixtures/peft/names);
        reference: PEFT's merge_and_unload logits stored with the fixture.
    check_merged_transformers.py full  VERDICT_BIN REPO WORK
        a random-init model of Qwen3-VL-2B-Instruct's size (save_pretrained into WORK, tiny_a's
        tokenizer files), a random PEFT LoRA on every linear layer of the language model;
        reference: PEFT on the fly. Needs peft; meant for the GPU machine (about 9 GB in f32).

Exits non-zero if the largest absolute logit difference exceeds the tolerance.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import Qwen3VLForConditionalGeneration

TOLERANCE = {"tiny": 1e-4, "full": 1e-3}


def export(verdict, base, adapter, out, shard_mb):
    subprocess.run([verdict, "export", "--format", "merged", "--base", str(base), "--adapter", str(adapter),
                    "--out", str(out), "--max-shard-mb", str(shard_mb), "--model-card"], check=True)
    index = json.loads((out / "model.safetensors.index.json").read_text())
    print(f"export: {len(set(index['weight_map'].values()))} shards, {len(index['weight_map'])} tensors")


def tiny(verdict, repo, work):
    tiny_a = repo / "crates/verdict-models/tests/fixtures/qwen3_vl/tiny_a"
    fixtures = repo / "crates/verdict-lora/tests/fixtures/peft"
    export(verdict, tiny_a, fixtures / "names", work / "merged", 1)
    ref = load_file(str(tiny_a / "reference.safetensors"))
    batch = {k: ref[f"one_image.{k}"] for k in ["input_ids", "attention_mask", "pixel_values", "image_grid_thw", "mm_token_type_ids"]}
    model = Qwen3VLForConditionalGeneration.from_pretrained(str(work / "merged"), dtype=torch.float32).eval()
    with torch.no_grad():
        logits = model(**batch).logits[0]
    expected = load_file(str(fixtures / "reference.safetensors"))["names.merged_logits"]
    return (logits - expected).abs().max().item()


def full(verdict, repo, work):
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import Qwen3VLConfig

    tiny_a = repo / "crates/verdict-models/tests/fixtures/qwen3_vl/tiny_a"
    device = "cuda" if torch.cuda.is_available() else "cpu"
    config = Qwen3VLConfig(
        text_config=dict(hidden_size=2048, num_hidden_layers=28, num_attention_heads=16, num_key_value_heads=8,
                         head_dim=128, intermediate_size=6144, vocab_size=151936, tie_word_embeddings=True,
                         rope_scaling={"rope_type": "default", "mrope_section": [24, 20, 20], "mrope_interleaved": True},
                         rope_theta=5000000, max_position_embeddings=262144),
        vision_config=dict(depth=24, hidden_size=1024, intermediate_size=4096, num_heads=16, patch_size=16,
                           spatial_merge_size=2, temporal_patch_size=2, out_hidden_size=2048,
                           deepstack_visual_indexes=[5, 11, 17]),
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    base = Qwen3VLForConditionalGeneration(config).to(torch.float32)
    base.save_pretrained(str(work / "base"))
    for name in ["tokenizer.json", "tokenizer_config.json", "chat_template.json", "preprocessor_config.json"]:
        shutil.copy(tiny_a / name, work / "base" / name)
    lora = LoraConfig(r=8, lora_alpha=16, target_modules=r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)")
    peft_model = get_peft_model(base, lora)
    with torch.no_grad():
        for module in peft_model.modules():
            if hasattr(module, "lora_B") and "default" in module.lora_B:
                module.lora_B["default"].weight.normal_(0, 0.02)
    peft_model.save_pretrained(str(work / "adapter"))
    ids = torch.randint(0, 352, (1, 64))
    peft_model = peft_model.to(device).eval()
    with torch.no_grad():
        expected = peft_model(input_ids=ids.to(device)).logits[0].float().cpu()
    del peft_model, base
    export(verdict, work / "base", work / "adapter", work / "merged", 2000)
    merged = Qwen3VLForConditionalGeneration.from_pretrained(str(work / "merged"), dtype=torch.float32).to(device).eval()
    with torch.no_grad():
        logits = merged(input_ids=ids.to(device)).logits[0].float().cpu()
    return (logits - expected).abs().max().item()


def main():
    mode, verdict, repo, work = sys.argv[1], sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])
    diff = {"tiny": tiny, "full": full}[mode](verdict, repo, work)
    print(f"{mode}: transformers on the merged export vs transformers + PEFT: max |logit difference| = {diff:.3e}")
    return 0 if diff < TOLERANCE[mode] else 1


if __name__ == "__main__":
    sys.exit(main())
