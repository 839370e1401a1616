#!/usr/bin/env bash
# Where the time of one batched Qwen3-VL-2B forward goes, kernel by kernel, on a GPU machine:
# writes the random 2B checkpoint and inputs as bench_qwen3_vl.py does, times
# `verdict-gpu-bench score` at a few batch sizes, then runs one batch-8 forward under Nsight
# Compute (duration only) and sums the kernel time by kernel name.
#
#   scripts/gpu/profile_qwen3_vl.sh /tmp/verdict-gpu-bench "$OUT"
set -euo pipefail
bin=$1
out=${2:-.}
work=${WORK:-/tmp/qwen3vl-bench}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$work" "$out"
python3 - "$work" <<PY
import sys
from pathlib import Path
sys.path.insert(0, "$here")
import bench_qwen3_vl as b
work = Path(sys.argv[1])
full = work / "qwen3-vl-2b-random"
if not (full / "model.safetensors.index.json").exists() and not (full / "model.safetensors").exists():
    b.make_checkpoint(full, b.config_dict(28, 24, [5, 11, 17], False), "cuda:0", 0)
b.make_inputs(work / "inputs.safetensors", rows=8, text_tokens=64, image_side=448, seed=0)
print("checkpoint and inputs ready", flush=True)
PY
model=$work/qwen3-vl-2b-random
inputs=$work/inputs.safetensors
"$bin" --model "$model" --inputs "$inputs" --device cuda:0 --dtype bf16 score \
    --batch-sizes 1,8 --items 32 | tee "$out/score.jsonl"
# One timed forward after two warm-ups: skip the warm-ups' kernels by keeping the last third.
# PROFILE=train profiles one recomputed LoRA training step after a warm-up step instead
# (keeps the last half).
if [ "${PROFILE:-score}" = train ]; then
    keep=2
    ncu --clock-control none --metrics gpu__time_duration.sum --csv --print-units base \
        "$bin" --model "$model" --inputs "$inputs" --device cuda:0 --dtype bf16 train \
        --batch 8 --steps 1 --checkpointing > "$out/ncu.csv" 2> "$out/ncu.err" || true
else
    keep=3
    ncu --clock-control none --metrics gpu__time_duration.sum --csv --print-units base \
        "$bin" --model "$model" --inputs "$inputs" --device cuda:0 --dtype bf16 score \
        --batch-sizes 8 --items 8 > "$out/ncu.csv" 2> "$out/ncu.err" || true
fi
KEEP=$keep python3 - "$out/ncu.csv" <<'PY' | tee "$out/kernels.txt"
import csv, collections, sys
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 10]
head, body = rows[0], rows[1:]
name_col = head.index("Kernel Name")
value_col = head.index("Metric Value")
ids = head.index("ID")
durations = [(int(r[ids]), r[name_col], float(r[value_col].replace(",", ""))) for r in body]
# KEEP runs of the same work ran (warm-ups, then one timed); keep the last of them.
import os
keep = int(os.environ["KEEP"])
durations.sort()
last = durations[(keep - 1) * len(durations) // keep:]
total = sum(d for _, _, d in last)
by_name = collections.defaultdict(lambda: [0, 0.0])
for _, name, d in last:
    key = name.split("(")[0][:90]
    by_name[key][0] += 1
    by_name[key][1] += d
print(f"kernels in the profiled run: {len(last)}, GPU time {total / 1e6:.2f} ms")
for name, (count, d) in sorted(by_name.items(), key=lambda kv: -kv[1][1])[:40]:
    print(f"{d / 1e6:9.3f} ms {100 * d / total:5.1f}%  {count:6d}x  {name}")
PY
