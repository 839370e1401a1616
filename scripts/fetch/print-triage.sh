#!/usr/bin/env bash
# The labelled mesh set of examples/print-triage: real STL files from Debian's OpenSCAD packages
# (GPL-2, unpacked by scripts/fetch/meshes.sh), copied into a folder tree by label,
# $VERDICT_DATA_DIR/print-triage/<label>/<name>.stl, as listed with their sha256 in
# examples/print-triage/meshes.tsv. Files are copied, not linked, so that the task's source
# hash covers their content. Never committed.
# Idempotent: the tree is rebuilt only when a listed file is missing or differs.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
data_dir="${VERDICT_DATA_DIR:-$repo/.cache/data}"
list="$repo/examples/print-triage/meshes.tsv"
target="$data_dir/print-triage"

# name of a listed file in the tree: its base name (the list has no two alike)
check_tree() {
  grep -v '^#' "$list" | while IFS=$'\t' read -r label path sha; do
    echo "$sha  $target/$label/$(basename "$path")"
  done | sha256sum --check --quiet - >/dev/null 2>&1
}

if [[ -f "$target/.complete" ]] && check_tree; then
  exit 0
fi
if [[ ! -f "$data_dir/meshes/openscad-testing-data/.complete" || ! -f "$data_dir/meshes/openscad/.complete" ]]; then
  VERDICT_DATA_DIR="$data_dir" bash "$repo/scripts/fetch/meshes.sh" >/dev/null
fi
staging="$(mktemp -d "$data_dir/.print-triage-XXXXXX")"
trap 'rm -rf "$staging"' EXIT
grep -v '^#' "$list" | while IFS=$'\t' read -r label path sha; do
  source="$data_dir/meshes/$path"
  echo "$sha  $source" | sha256sum --check --quiet -
  mkdir -p "$staging/$label"
  cp "$source" "$staging/$label/$(basename "$path")"
done
touch "$staging/.complete"
rm -rf "$target"
mv "$staging" "$target"
trap - EXIT
echo "print-triage: $(grep -vc '^#' "$list") meshes under $target"
