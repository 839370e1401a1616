#!/usr/bin/env python3
"""Side-by-side Qwen3-VL benchmark: transformers (+peft) and Verdict on the same checkpoint.

Runs on a CUDA machine that has torch, transformers and peft. In one go it:
  1. writes a random-init checkpoint with the real Qwen3-VL-2B config (and a 2-layer slice),
  2. writes synthetic inputs (one 448x448 image + 64 text tokens per item),
  3. measures transformers and `verdict-gpu-bench` on the same files,
  4. prints one table (and writes it as JSON and Markdown under --out).

Usage (see BENCHMARKS.md for the device command):
  python3 scripts/gpu/bench_qwen3_vl.py --bin /tmp/verdict-gpu-bench --out "$OUT"
  python3 scripts/gpu/bench_qwen3_vl.py --bin target/release/verdict-gpu-bench --small --device cpu
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import re
import subprocess
import threading
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

# Whether this transformers version's forward takes `mm_token_type_ids` (newer releases require it).
MM_TOKEN_TYPES = "mm_token_type_ids" in inspect.signature(Qwen3VLForConditionalGeneration.forward).parameters

IDS = {"image": 151655, "video": 151656, "start": 151652, "end": 151653, "eos": 151645, "bos": 151643}


def config_dict(text_layers: int, vision_depth: int, deepstack: list[int], small: bool) -> dict:
    """The published Qwen3-VL-2B-Instruct layout; `small` shrinks widths for CPU smoke runs."""
    text = dict(hidden=2048, heads=16, kv=8, head_dim=128, inter=6144, vocab=151936, mrope=[24, 20, 20])
    vision = dict(hidden=1024, inter=4096, heads=16)
    if small:
        text = dict(hidden=64, heads=4, kv=2, head_dim=16, inter=128, vocab=151936, mrope=[4, 2, 2])
        vision = dict(hidden=32, inter=64, heads=4)
    return {
        "architectures": ["Qwen3VLForConditionalGeneration"],
        "model_type": "qwen3_vl",
        "image_token_id": IDS["image"],
        "video_token_id": IDS["video"],
        "vision_start_token_id": IDS["start"],
        "vision_end_token_id": IDS["end"],
        "tie_word_embeddings": True,
        "text_config": {
            "model_type": "qwen3_vl_text",
            "attention_bias": False,
            "bos_token_id": IDS["bos"],
            "eos_token_id": IDS["eos"],
            "head_dim": text["head_dim"],
            "hidden_act": "silu",
            "hidden_size": text["hidden"],
            "initializer_range": 0.02,
            "intermediate_size": text["inter"],
            "max_position_embeddings": 262144,
            "num_attention_heads": text["heads"],
            "num_hidden_layers": text_layers,
            "num_key_value_heads": text["kv"],
            "rms_norm_eps": 1e-6,
            "rope_scaling": {"mrope_interleaved": True, "mrope_section": text["mrope"], "rope_type": "default"},
            "rope_theta": 5000000,
            "tie_word_embeddings": True,
            "vocab_size": text["vocab"],
        },
        "vision_config": {
            "model_type": "qwen3_vl",
            "deepstack_visual_indexes": deepstack,
            "depth": vision_depth,
            "hidden_act": "gelu_pytorch_tanh",
            "hidden_size": vision["hidden"],
            "in_channels": 3,
            "initializer_range": 0.02,
            "intermediate_size": vision["inter"],
            "num_heads": vision["heads"],
            "num_position_embeddings": 2304,
            "out_hidden_size": text["hidden"],
            "patch_size": 16,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
    }


def make_checkpoint(path: Path, cfg: dict, device: str, seed: int) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(cfg, indent=2))
    config = Qwen3VLConfig.from_pretrained(path)
    torch.manual_seed(seed)
    with torch.device(device):
        model = Qwen3VLForConditionalGeneration(config).to(torch.bfloat16)
    model.save_pretrained(path, safe_serialization=True)
    (path / "config.json").write_text(json.dumps(cfg, indent=2))
    del model


def make_inputs(path: Path, rows: int, text_tokens: int, image_side: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    grid = image_side // 16
    merged = (grid // 2) ** 2
    ids = []
    for _ in range(rows):
        text = torch.randint(0, 150000, (text_tokens,), generator=g)
        ids.append(torch.cat([torch.tensor([IDS["start"]]), torch.full((merged,), IDS["image"]), torch.tensor([IDS["end"]]), text]))
    save_file(
        {
            "input_ids": torch.stack(ids).to(torch.int64),
            "pixel_values": torch.randn(rows * grid * grid, 3 * 2 * 16 * 16, generator=g),
            "image_grid_thw": torch.tensor([[1, grid, grid]] * rows, dtype=torch.int64),
            "label_ids": torch.tensor([9693, 2152, 1566], dtype=torch.int64),
        },
        str(path),
    )


class GpuMemory:
    """Peak GPU memory of a child process, sampled with nvidia-smi (includes the CUDA context)."""

    def __init__(self, pid: int):
        self.pid, self.peak_mib, self._stop = pid, 0, False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                out = subprocess.run(
                    ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                    capture_output=True, text=True, timeout=5,
                ).stdout
                for line in out.splitlines():
                    pid, mib = [x.strip() for x in line.split(",")]
                    if int(pid) == self.pid:
                        self.peak_mib = max(self.peak_mib, int(mib))
            except Exception:
                pass
            time.sleep(0.1)

    def stop(self) -> float:
        self._stop = True
        self._thread.join()
        return self.peak_mib / 1024


def verdict(binary: str, model: Path, inputs: Path, device: str, dtype: str, *args: str) -> tuple[list[dict], float]:
    cmd = [binary, "--model", str(model), "--inputs", str(inputs), "--device", device, "--dtype", dtype, *args]
    env = dict(os.environ, RUST_BACKTRACE="0", RUST_LIB_BACKTRACE="0")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    mem = GpuMemory(proc.pid) if device.startswith("cuda") else None
    out, err = proc.communicate()
    peak = mem.stop() if mem else 0.0
    if proc.returncode != 0:
        # The error message, not the backtrace that follows it.
        message = re.split(r"(?i)stack backtrace:", err)[0].strip()
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{message[-4000:]}")
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")], peak


def load_batch(inputs: Path, rows: int, device: str) -> dict:
    t = load_file(str(inputs))
    n = t["input_ids"].shape[0]
    idx = [i % n for i in range(rows)]
    patches = t["pixel_values"].shape[0] // n
    pix = torch.cat([t["pixel_values"][i * patches:(i + 1) * patches] for i in idx])
    batch = {
        "input_ids": t["input_ids"][idx].to(device),
        "attention_mask": torch.ones_like(t["input_ids"][idx]).to(device),
        "pixel_values": pix.to(device),
        "image_grid_thw": t["image_grid_thw"][idx].to(device),
    }
    if MM_TOKEN_TYPES:
        # Newer transformers take the modality of every token explicitly (1 = image).
        batch["mm_token_type_ids"] = (batch["input_ids"] == IDS["image"]).long()
    return batch


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def hf_model(path: Path, dtype: torch.dtype, device: str):
    return Qwen3VLForConditionalGeneration.from_pretrained(path, dtype=dtype, attn_implementation="sdpa").to(device).eval()


def hf_logits(model, batch: dict) -> torch.Tensor:
    with torch.inference_mode():
        return model(**batch, logits_to_keep=1).logits[:, -1].float()


def hf_score(model, inputs: Path, device: str, batch_sizes: list[int], items: int) -> dict[int, float]:
    label_ids = load_file(str(inputs))["label_ids"].to(device)
    out = {}
    for bs in batch_sizes:
        batch = load_batch(inputs, bs, device)
        for _ in range(2):
            hf_logits(model, batch)
        sync(device)
        steps = max(1, -(-items // bs))
        start = time.perf_counter()
        for _ in range(steps):
            torch.log_softmax(hf_logits(model, batch), -1)[:, label_ids]
        sync(device)
        out[bs] = steps * bs / (time.perf_counter() - start)
    return out


def hf_generate(model, inputs: Path, device: str, bs: int, new_tokens: int) -> float:
    batch = load_batch(inputs, bs, device)
    with torch.inference_mode():
        model.generate(**batch, max_new_tokens=4, min_new_tokens=4, do_sample=False)
        sync(device)
        start = time.perf_counter()
        model.generate(**batch, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
        sync(device)
    return bs / (time.perf_counter() - start)


def hf_train(path: Path, inputs: Path, device: str, bs: int, steps: int, checkpointing: bool, rank: int) -> tuple[float, float]:
    from peft import LoraConfig, get_peft_model

    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    model = Qwen3VLForConditionalGeneration.from_pretrained(path, dtype=torch.bfloat16, attn_implementation="sdpa").to(device)
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    targets = r"model\.language_model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)"
    model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules=targets))
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    batch = load_batch(inputs, bs, device)
    labels = batch["input_ids"].clone()

    def step() -> None:
        loss = model(**batch, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    tokens = steps * bs * batch["input_ids"].shape[1] / (time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else 0.0
    del model, opt
    torch.cuda.empty_cache()
    return tokens, peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, help="verdict-gpu-bench binary")
    ap.add_argument("--work", default="/tmp/qwen3vl-bench")
    ap.add_argument("--out", default=".")
    ap.add_argument("--device", default="cuda:0")
    ap.add_argument("--small", action="store_true", help="tiny widths and few items (CPU smoke run)")
    ap.add_argument("--batch-sizes", default="8,32,64")
    ap.add_argument("--items", type=int, default=256)
    ap.add_argument("--train-steps", type=int, default=10)
    ap.add_argument("--skip", default="", help="comma list of parts to skip: generate,train")
    args = ap.parse_args()
    work, out = Path(args.work), Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    dev = args.device
    cuda = dev.startswith("cuda")
    skip = set(filter(None, args.skip.split(",")))
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    results: dict = {"device": torch.cuda.get_device_name(0) if cuda else "cpu", "torch": torch.__version__}
    import transformers

    results["transformers"] = transformers.__version__
    t0 = time.time()

    full, slice2 = work / "qwen3-vl-2b-random", work / "qwen3-vl-2layer-random"
    if not (full / "model.safetensors.index.json").exists() and not (full / "model.safetensors").exists():
        make_checkpoint(full, config_dict(28, 24, [5, 11, 17], args.small), dev, 0)
    if not (slice2 / "model.safetensors").exists():
        make_checkpoint(slice2, config_dict(2, 2, [1], args.small), dev, 1)
    inputs = work / "inputs.safetensors"
    make_inputs(inputs, rows=8, text_tokens=64, image_side=448, seed=0)
    results["seq_len"] = int(load_file(str(inputs))["input_ids"].shape[1])
    print(f"checkpoints + inputs ready in {time.time() - t0:.0f}s", flush=True)

    # 1. parity: bf16 full model, f32 2-layer slice
    parity = {}
    for name, path, dtype, tdtype in [("bf16", full, "bf16", torch.bfloat16), ("f32-2layer", slice2, "f32", torch.float32)]:
        model = hf_model(path, tdtype, dev)
        ref = hf_logits(model, load_batch(inputs, 8, dev)).cpu()
        del model
        torch.cuda.empty_cache() if cuda else None
        ours_file = work / f"verdict-logits-{name}.safetensors"
        verdict(args.bin, path, inputs, dev, dtype, "logits", "--out", str(ours_file))
        ours = load_file(str(ours_file))["logits"]
        labels = load_file(str(inputs))["label_ids"]
        agree = (ref[:, labels].argmax(-1) == ours[:, labels].argmax(-1)).float().mean().item()
        top1 = (ref.argmax(-1) == ours.argmax(-1)).float().mean().item()
        parity[name] = {"max_abs_diff": (ref - ours).abs().max().item(), "logit_scale": ref.abs().max().item(), "label_agreement": agree, "top1_agreement": top1}
        print(f"parity {name}: {parity[name]}", flush=True)
    results["parity"] = parity

    # 2. throughput
    model = hf_model(full, torch.bfloat16, dev)
    results["hf_score"] = hf_score(model, inputs, dev, sizes, args.items)
    print(f"transformers label scoring: {results['hf_score']}", flush=True)
    if "generate" not in skip:
        results["hf_generate_40"] = hf_generate(model, inputs, dev, 8, 40)
        print(f"transformers generate 40 tokens: {results['hf_generate_40']:.2f} items/s", flush=True)
    del model
    torch.cuda.empty_cache() if cuda else None
    rows, peak = verdict(args.bin, full, inputs, dev, "bf16", "score", "--batch-sizes", args.batch_sizes, "--items", str(args.items))
    results["verdict_score"] = {r["batch"]: r["items_per_s"] for r in rows}
    results["verdict_score_tflops"] = {r["batch"]: r["tflops"] for r in rows}
    results["verdict_score_peak_gib"] = peak
    print(f"verdict label scoring: {results['verdict_score']}", flush=True)

    # 3. LoRA training step
    if "train" not in skip and cuda:
        for ckpt in (False, True):
            tok, mem = hf_train(full, inputs, dev, 8, args.train_steps, ckpt, 16)
            results["hf_train_ckpt" if ckpt else "hf_train"] = {"tokens_per_s": tok, "peak_gib": mem}
            print(f"transformers+peft train (checkpointing={ckpt}): {tok:.0f} tok/s, {mem:.1f} GiB", flush=True)
        for ckpt in (False, True):
            extra = ["--checkpointing"] if ckpt else []
            key = "verdict_train_ckpt" if ckpt else "verdict_train"
            try:
                rows, peak = verdict(args.bin, full, inputs, dev, "bf16", "train", "--rank", "16", "--batch", "8", "--steps", str(args.train_steps), *extra)
                # Peak allocated by the allocator (as torch's max_memory_allocated), and the
                # process's device memory as nvidia-smi sees it (context and cache included).
                allocated = rows[-1].get("allocated_peak_gib")
                results[key] = {"tokens_per_s": rows[-1]["tokens_per_s"], "peak_gib": allocated if allocated else peak,
                                "smi_peak_gib": peak, "loss": rows[-1].get("loss")}
            except RuntimeError as e:
                lines = [l for l in str(e).splitlines()[1:] if l.strip()]
                results[key] = {"error": " / ".join(lines)[:300]}
            print(f"verdict train (checkpointing={ckpt}): {results[key]}", flush=True)

    (out / "qwen3_vl_bench.json").write_text(json.dumps(results, indent=2))
    table = render(results)
    (out / "qwen3_vl_bench.md").write_text(table)
    print(table)


def render(r: dict) -> str:
    lines = [f"device: {r['device']}, torch {r['torch']}, transformers {r['transformers']}, sequence {r['seq_len']} tokens (one 448x448 image + 64 text tokens)", ""]
    lines += ["| parity | max abs diff | max abs logit | label agreement | top-1 agreement |", "|---|---|---|---|---|"]
    for k, v in r["parity"].items():
        lines.append(f"| {k} | {v['max_abs_diff']:.4g} | {v['logit_scale']:.3g} | {v['label_agreement']:.0%} | {v['top1_agreement']:.0%} |")
    lines += ["", "| label scoring (items/s) | transformers | Verdict | ratio | Verdict TFLOP/s |", "|---|---|---|---|---|"]
    for bs, hf in r["hf_score"].items():
        ours = r["verdict_score"].get(bs) or r["verdict_score"].get(str(bs))
        tfl = r["verdict_score_tflops"].get(bs) or r["verdict_score_tflops"].get(str(bs))
        lines.append(f"| batch {bs} | {hf:.1f} | {ours:.1f} | {ours / hf:.2f}x | {tfl:.0f} |")
    best_hf, best_ours = max(r["hf_score"].values()), max(r["verdict_score"].values())
    lines.append(f"| best | {best_hf:.1f} | {best_ours:.1f} | {best_ours / best_hf:.2f}x | |")
    if "hf_generate_40" in r:
        g = r["hf_generate_40"]
        lines.append(f"| transformers generate 40-token answer, batch 8 | {g:.2f} | | Verdict best / generate: {best_ours / g:.0f}x | |")
    if "hf_train" in r:
        lines += ["", "| LoRA r=16 train step, batch 8 | tokens/s | peak GiB allocated | process (nvidia-smi) |", "|---|---|---|---|"]
        for k in ("hf_train", "hf_train_ckpt", "verdict_train", "verdict_train_ckpt"):
            if k in r:
                v = r[k]
                if "error" in v:
                    lines.append(f"| {k} | error | {v['error'][:120]} | |")
                else:
                    smi = f"{v['smi_peak_gib']:.1f}" if "smi_peak_gib" in v else ""
                    lines.append(f"| {k} | {v['tokens_per_s']:.0f} | {v['peak_gib']:.1f} | {smi} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
