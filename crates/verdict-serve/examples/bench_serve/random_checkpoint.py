#!/usr/bin/env python3
"""A random-init Qwen3-VL-2B checkpoint directory that `verdict serve` and `bench_serve` load
as they would a published one (weights, config, tokenizer, chat template, image processor),
written on a machine without access to a model hub.

- Weights: the published Qwen3-VL-2B-Instruct layout (the config of
  scripts/gpu/bench_qwen3_vl.py: 28 text layers, hidden 2048, vision depth 24), random, bf16.
- Text side: tokenizer, tokenizer config, chat template and generation config of the tiny
  committed test checkpoint. Its special tokens sit at ids 320-339, so the config's
  special-token ids are moved there (the random embedding table does not mind). It is a small
  byte-level vocabulary: texts take more tokens than under the real one, and `bench_serve`
  reports the measured count.
- Image processor: Qwen3-VL's published sizes (65,536 to 16,777,216 pixels, patch 16, merge 2),
  so a 448x448 image becomes 784 patches and 196 merged tokens as in the real model.

Usage (on the GPU machine, which has torch and transformers):
  python3 crates/verdict-serve/examples/bench_serve/random_checkpoint.py /tmp/qwen3vl-2b
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]
TINY = ROOT / "crates/verdict-models/tests/fixtures/qwen3_vl/tiny_a"
TEXT_FILES = ["tokenizer.json", "tokenizer_config.json", "chat_template.json", "generation_config.json"]

PREPROCESSOR = {
    "size": {"longest_edge": 16777216, "shortest_edge": 65536},
    "patch_size": 16,
    "temporal_patch_size": 2,
    "merge_size": 2,
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
    "processor_class": "Qwen3VLProcessor",
    "image_processor_type": "Qwen2VLImageProcessorFast",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--device", default="cuda:0", help="where torch initialises the weights")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--small", action="store_true", help="narrow widths, for a CPU smoke run")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT / "scripts/gpu"))
    import bench_qwen3_vl as reference

    tiny = json.loads((TINY / "config.json").read_text())
    layers, depth, deepstack = (2, 2, [0]) if args.small else (28, 24, [5, 11, 17])
    config = reference.config_dict(layers, depth, deepstack, args.small)
    for key in ["image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id"]:
        config[key] = tiny[key]
    for key in ["bos_token_id", "eos_token_id"]:
        config["text_config"][key] = tiny["text_config"][key]
    reference.make_checkpoint(args.out, config, args.device, args.seed)
    for name in TEXT_FILES:
        shutil.copy(TINY / name, args.out / name)
    (args.out / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
