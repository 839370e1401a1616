#!/usr/bin/env python3
"""Reads a GGUF file written by `verdict export --format gguf` back with the `gguf` package
(llama.cpp's own Python reader) and checks it against the source checkpoint.

Checks, independently of the Rust code:
- metadata llama.cpp needs for `qwen3vl` (architecture, hyper-parameters, tokenizer);
- every language-model tensor of the checkpoint is present under the name gguf-py's
  tensor-name map gives it, with the shape and the type the preset implies;
- after dequantisation with gguf-py, each tensor is within its type's error bound, and
  Q8_0 and Q5_0 blocks are byte-identical to gguf-py's bit-exact ports of ggml's reference quantiser.

Usage: check_gguf.py FILE.gguf CHECKPOINT_DIR PRESET(f16|q8_0|q4_k_m)
Prints a JSON summary (errors per tensor type) and exits non-zero on the first failure.
"""

import json
import struct
import sys
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T

DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": None}


def read_safetensors(path):
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        buf = raw[8 + n + start : 8 + n + end]
        if info["dtype"] == "BF16":
            arr = (np.frombuffer(buf, np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            arr = np.frombuffer(buf, DTYPES[info["dtype"]]).astype(np.float32)
        out[name] = arr.reshape(info["shape"])
    return out


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def use_more_bits(i, n):
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def expected_type(preset, gguf_name, shape, n_layer, tied):
    """llama.cpp's choice (llama_tensor_get_type) for the three presets, with its fallback."""
    if len(shape) == 1:
        return T.F32
    if preset == "f16":
        want = T.F16
    elif preset == "q8_0":
        want = T.Q8_0
    else:
        want = T.Q4_K
        layer = int(gguf_name.split(".")[1]) if gguf_name.startswith("blk.") else None
        if gguf_name == "output.weight" or (tied and gguf_name == "token_embd.weight"):
            want = T.Q6_K
        elif layer is not None and (".attn_v." in gguf_name or ".ffn_down." in gguf_name):
            if use_more_bits(layer, n_layer):
                want = T.Q6_K
    row = shape[-1]
    fallback = {T.Q4_K: T.Q5_0, T.Q6_K: T.Q8_0}
    while row % gguf.GGML_QUANT_SIZES[want][0] != 0:
        want = fallback.get(want, T.F16)
        if want == T.F16:
            break
    return want


def bound(qtype, source):
    """Largest allowed |dequantised - source| per element, from each block's own values."""
    flat = source.reshape(-1)
    if qtype == T.F32:
        return np.zeros_like(flat)
    if qtype == T.F16:
        # round-to-nearest half precision: half an ulp (2^-11 relative) or the subnormal step
        return np.maximum(np.abs(flat) * 2.0**-11, 2.0**-25)
    block = gguf.GGML_QUANT_SIZES[qtype][0]
    blocks = flat.reshape(-1, block)
    amax = np.abs(blocks).max(axis=1, keepdims=True)
    if qtype == T.Q8_0:
        # step amax/127, rounding error half a step, plus the f16 rounding of the scale
        per_block = amax * (0.5 / 127 + 2.0**-11)
    elif qtype == T.Q5_0:
        # levels -16..15 of step amax/16 signed towards the extreme value, so the opposite
        # extreme is clamped one full step short; plus the f16 rounding of the scale
        per_block = amax * (1.0 / 16 + 2.0**-10)
    elif qtype == T.Q6_K:
        # 16 sub-blocks of 16 with 8-bit scales of the super-block's f16 scale; 6-bit values
        # step at most amax/31.5 -> half a step, with slack for the quantised scales
        per_block = amax * (1.0 / 63 * 1.5)
    elif qtype == T.Q4_K:
        # 8 sub-blocks of 32, 4-bit values with 6-bit scales and mins: at most one full step of
        # the widest sub-block (range / 15)
        lo = np.minimum(blocks.min(axis=1, keepdims=True), 0)
        hi = blocks.max(axis=1, keepdims=True)
        per_block = (hi - lo) / 15
    else:
        fail(f"no bound for {qtype.name}")
    return np.broadcast_to(per_block, blocks.shape).reshape(-1)


def main():
    path, checkpoint, preset = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    reader = gguf.GGUFReader(path)
    fields = {name: field for name, field in reader.fields.items()}

    def value(key):
        if key not in fields:
            fail(f"metadata {key} missing")
        f = fields[key]
        return f.contents()

    config = json.loads((checkpoint / "config.json").read_text())
    text = config.get("text_config", config)
    arch = value("general.architecture")
    if arch != gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.QWEN3VL]:
        fail(f"architecture {arch!r}")
    K = gguf.Keys
    expect = {
        K.LLM.BLOCK_COUNT: text["num_hidden_layers"],
        K.LLM.EMBEDDING_LENGTH: text["hidden_size"],
        K.LLM.FEED_FORWARD_LENGTH: text["intermediate_size"],
        K.LLM.CONTEXT_LENGTH: text["max_position_embeddings"],
        K.Attention.HEAD_COUNT: text["num_attention_heads"],
        K.Attention.HEAD_COUNT_KV: text["num_key_value_heads"],
        K.Attention.KEY_LENGTH: text["head_dim"],
        K.Attention.VALUE_LENGTH: text["head_dim"],
        K.LLM.NUM_DEEPSTACK_LAYERS: len(config["vision_config"]["deepstack_visual_indexes"]),
    }
    for key, want in expect.items():
        got = value(key.format(arch=arch))
        if got != want:
            fail(f"{key}: {got} != {want}")
    sections = list(value(K.Rope.DIMENSION_SECTIONS.format(arch=arch)))
    mrope = text["rope_scaling"]["mrope_section"]
    if sections != list(mrope) + [0] * (4 - len(mrope)):
        fail(f"rope sections {sections}")
    if not np.isclose(value(K.Rope.FREQ_BASE.format(arch=arch)), text["rope_theta"]):
        fail("rope.freq_base")
    if not np.isclose(value(K.Attention.LAYERNORM_RMS_EPS.format(arch=arch)), text["rms_norm_eps"], rtol=1e-6):
        fail("rms eps")
    if value(K.Tokenizer.MODEL) != "gpt2" or value(K.Tokenizer.PRE) != "qwen2":
        fail("tokenizer model")
    tokens = value(K.Tokenizer.LIST)
    if len(tokens) != text["vocab_size"]:
        fail(f"{len(tokens)} tokens for vocab {text['vocab_size']}")
    tokenizer = json.loads((checkpoint / "tokenizer.json").read_text())
    for added in tokenizer["added_tokens"]:
        if tokens[added["id"]] != added["content"]:
            fail(f"token {added['id']}")
    for tok, idx in tokenizer["model"]["vocab"].items():
        if tokens[idx] != tok:
            fail(f"token {idx}")
    if tokens[value(K.Tokenizer.EOS_ID)] != "<|im_end|>":
        fail("eos token")
    if K.Tokenizer.CHAT_TEMPLATE not in fields:
        fail("chat template missing")
    if value(K.General.FILE_TYPE) != {"f16": 1, "q8_0": 7, "q4_k_m": 15}[preset]:
        fail("file type")

    source = {}
    files = sorted(checkpoint.glob("model*.safetensors"))
    for file in files:
        source.update(read_safetensors(file))
    n_layer = text["num_hidden_layers"]
    tied = config.get("tie_word_embeddings", text.get("tie_word_embeddings", False))
    name_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH.QWEN3VL, n_layer)
    tensors = {t.name: t for t in reader.tensors}
    seen = set()
    stats = {}
    for hf_name, weights in source.items():
        if hf_name.startswith("model.visual."):
            continue
        key = hf_name.replace("model.language_model.", "model.")
        gguf_name = name_map.get_name(key, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            fail(f"gguf-py has no name for {hf_name}")
        if tied and gguf_name == "output.weight":
            continue
        if gguf_name not in tensors:
            fail(f"{gguf_name} ({hf_name}) missing from the file")
        seen.add(gguf_name)
        tensor = tensors[gguf_name]
        want = expected_type(preset, gguf_name, weights.shape, n_layer, tied)
        if tensor.tensor_type != want:
            fail(f"{gguf_name}: {tensor.tensor_type.name}, expected {want.name}")
        restored = gguf.quants.dequantize(tensor.data, tensor.tensor_type).reshape(-1).astype(np.float64)
        if restored.size != weights.size:
            fail(f"{gguf_name}: {restored.size} values for shape {weights.shape}")
        if list(reversed([int(d) for d in tensor.shape])) != list(weights.shape):
            fail(f"{gguf_name}: ggml shape {list(tensor.shape)} for {list(weights.shape)}")
        flat = weights.reshape(-1).astype(np.float64)
        err = np.abs(restored - flat)
        allowed = bound(tensor.tensor_type, weights.astype(np.float32)).astype(np.float64) * (1 + 1e-6) + 1e-12
        if np.any(err > allowed):
            i = int(np.argmax(err - allowed))
            fail(f"{gguf_name} ({tensor.tensor_type.name}): error {err[i]:.3g} > bound {allowed[i]:.3g} at {i}")
        if tensor.tensor_type in (T.Q8_0, T.Q5_0):
            reference = gguf.quants.quantize(weights.astype(np.float32), tensor.tensor_type).reshape(-1)
            ours = np.asarray(tensor.data).reshape(-1)
            mismatched = int(np.count_nonzero(reference != ours))
            if mismatched:
                fail(f"{gguf_name}: {mismatched} {tensor.tensor_type.name} bytes differ from ggml's reference quantiser")
        s = stats.setdefault(tensor.tensor_type.name, {"tensors": 0, "max_abs": 0.0, "sq": 0.0, "ref_sq": 0.0, "max_ratio": 0.0})
        s["tensors"] += 1
        s["max_abs"] = max(s["max_abs"], float(err.max()))
        s["sq"] += float((err**2).sum())
        s["ref_sq"] += float((flat**2).sum())
        s["max_ratio"] = max(s["max_ratio"], float((err / allowed).max()))
    extra = set(tensors) - seen
    if extra:
        fail(f"unexpected tensors {sorted(extra)}")
    summary = {
        name: {
            "tensors": s["tensors"],
            "max_abs_error": s["max_abs"],
            "relative_rms_error": (s["sq"] / max(s["ref_sq"], 1e-30)) ** 0.5,
            "worst_error_over_bound": s["max_ratio"],
        }
        for name, s in stats.items()
    }
    print(json.dumps({"preset": preset, "types": summary}, indent=1))


if __name__ == "__main__":
    main()
