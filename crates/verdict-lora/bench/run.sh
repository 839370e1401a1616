#!/usr/bin/env bash
# LoRA training-step benchmark, Verdict vs transformers + PEFT, on one machine in one run.
#
#   crates/verdict-lora/bench/run.sh BENCH_BINARY [--cuda] [--batch B] [--seq L] [--steps N]
#
# BENCH_BINARY is the built example (cargo build --release [--features cuda] -p verdict-lora
# --example bench_lora). Makes a random-init Qwen3-VL-2B-shaped checkpoint in $CHECKPOINT
# (default /tmp/qwen3vl-2b-random) unless it exists, runs both sides with the same settings
# and prints a table with the ratio.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
binary="$1"; shift
checkpoint="${CHECKPOINT:-/tmp/qwen3vl-2b-random}"
[ -f "$checkpoint/config.json" ] || python3 "$here/bench_peft.py" make "$checkpoint"
cuda_flag=""
rest=()
for arg in "$@"; do
  if [ "$arg" = "--cuda" ]; then cuda_flag="--cuda"; else rest+=("$arg"); fi
done
ours="$("$binary" "$checkpoint" $cuda_flag "${rest[@]}")"
theirs="$(python3 "$here/bench_peft.py" bench "$checkpoint" "${rest[@]}" 2>/dev/null | tail -1)"
echo "$ours"
echo "$theirs"
python3 - "$ours" "$theirs" <<'PY'
import json, sys
ours, theirs = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"\n| implementation | device | dtype | batch x seq | adapted layers | trainable params | ms/step | tokens/s |")
print("|---|---|---|---|---|---|---|---|")
for r in (ours, theirs):
    print(f"| {r['impl']} | {r['device']} | {r['dtype']} | {r['batch']} x {r['seq']} | {r['adapted_layers']} | "
          f"{r['trainable_parameters']:,} | {r['ms_per_step']:.1f} | {r['tokens_per_second']:.0f} |")
print(f"\nVerdict / PEFT time per step: {ours['ms_per_step'] / theirs['ms_per_step']:.2f}x")
PY
