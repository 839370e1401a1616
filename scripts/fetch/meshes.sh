#!/usr/bin/env bash
# Real STL meshes for the renderer's tests and benchmark: Debian's `openscad-testing-data`
# (about 20 STL, some deliberately malformed or empty) and `openscad` (a few example STL).
# Both GPL-2; unpacked under $VERDICT_DATA_DIR/meshes/, never committed.
# Idempotent: a package is downloaded and unpacked only when its folder is missing.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
data_dir="${VERDICT_DATA_DIR:-$repo/.cache/data}"
target="$data_dir/meshes"
mkdir -p "$target"

# package=version=sha256 of the .deb (bookworm).
packages=(
  "openscad-testing-data=2021.01-6=4a05b16116ca8da7cb10224809f66094a991d5b4d7de75c087d1d85120536857"
  "openscad=2021.01-6=d3f24936ddeb7b6a5f1008ea6baf8845d5f8c1e7c48cb2dc346f994c470e3c01"
)

for entry in "${packages[@]}"; do
  IFS='=' read -r name version sha <<<"$entry"
  unpacked="$target/$name"
  if [[ -f "$unpacked/.complete" ]]; then
    continue
  fi
  # An empty policy means the package lists were never fetched on this machine.
  if ! apt-cache policy "$name" 2>/dev/null | grep -q 'Candidate: [^(]'; then
    apt-get update -qq
  fi
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  chmod 777 "$work"
  (cd "$work" && apt-get download -qq "$name=$version")
  deb="$(ls "$work"/"${name}"_*.deb)"
  echo "$sha  $deb" | sha256sum --check --quiet -
  rm -rf "$unpacked"
  mkdir -p "$unpacked"
  dpkg -x "$deb" "$unpacked"
  touch "$unpacked/.complete"
  rm -rf "$work"
  trap - EXIT
done

echo "STL files under $target:"
find "$target" -iname '*.stl' | sort
