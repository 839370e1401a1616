#!/usr/bin/env bash
# transformers loads `verdict export --format merged` with the logits transformers + PEFT compute
# for the same adapter. Modes: `tiny` (default: tiny checkpoint + PEFT-made fixture adapter; needs
# torch and transformers) and `full` (random-init model of Qwen3-VL-2B's size; needs peft too, run
# it on the GPU machine). VERDICT_BIN: a built verdict binary (built here with cargo when unset).
# Exits non-zero if the largest logit difference exceeds 1e-4 (tiny) / 1e-3 (full).
set -euo pipefail
cd "$(dirname "$0")/../.."
MODE="${1:-tiny}"
if [ -z "${VERDICT_BIN:-}" ]; then
  cargo build -q -p verdict
  VERDICT_BIN="${CARGO_TARGET_DIR:-target}/debug/verdict"
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
python3 crates/verdict-export/tests/python/check_merged_transformers.py "$MODE" "$VERDICT_BIN" "$PWD" "$WORK"
