#!/usr/bin/env bash
# Data-parallel training launched by torchrun equals single-process training: runs
# crates/verdict-dist/examples/ddp_train (a small MLP on CPU, TCP communicator) on 1 process,
# on 2 processes under torchrun, and on 8 processes under torchrun resumed halfway on 4
# processes with deploy/torchrun/launch.sh; compares the per-step losses and final parameters.
# Needs torchrun (PyTorch) on PATH. Exits non-zero if the curves differ by more than 1e-5.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build -q -p verdict-dist --example ddp_train
BIN="${CARGO_TARGET_DIR:-target}/debug/examples/ddp_train"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

"$BIN" --steps 12 --out "$WORK/single" > "$WORK/single.log"
torchrun --standalone --nproc-per-node 2 --no-python "$BIN" --steps 12 --out "$WORK/two" > "$WORK/two.log"
torchrun --standalone --nproc-per-node 8 --no-python "$BIN" --steps 6 --out "$WORK/resumed" > "$WORK/resumed.log"
MASTER_PORT=${MASTER_PORT:-29611} deploy/torchrun/launch.sh 4 "$BIN" --steps 12 --out "$WORK/resumed" --resume >> "$WORK/resumed.log"

python3 - "$WORK" <<'PY'
import json, sys
work = sys.argv[1]
def curve(name):
    rows = [json.loads(line) for line in open(f"{work}/{name}.log")]
    return {r["step"]: (r["loss"], r["world_size"]) for r in rows}
def params(name):
    return json.load(open(f"{work}/{name}/checkpoint.json"))["params"]
single, two, resumed = curve("single"), curve("two"), curve("resumed")
print("step | 1 process | 2 (torchrun) | 8 then 4 (resumed)")
for step in sorted(single):
    print(f"{step:4d} | {single[step][0]:.6f} | {two[step][0]:.6f} | {resumed[step][0]:.6f} (world {resumed[step][1]})")
worst = 0.0
for other in (two, resumed):
    assert sorted(other) == sorted(single), "missing steps"
    worst = max(worst, max(abs(single[s][0] - other[s][0]) for s in single))
for name in ("two", "resumed"):
    worst = max(worst, max(abs(a - b) for a, b in zip(params("single"), params(name))))
print(f"largest difference (loss or parameter): {worst:.3g}")
sys.exit(0 if worst <= 1e-5 else 1)
PY
