#!/usr/bin/env bash
# Render meshes as a Slurm job array: task i of N renders shard i/N, then one dependent
# job merges the parts.
#
#   ./render-array.sh MESH_LIST OUT_DIR [N]
#
# MESH_LIST holds one mesh path per line (shared filesystem). Each array task takes the
# lines of its shard by position (round-robin), renders them into
# OUT_DIR/parts/part-<i>-of-<N>/, and the merge job, which starts only if every task
# succeeded (afterok), writes OUT_DIR/renders. A failed task can be resubmitted alone with
# `sbatch --array=<i> ...`; the merge refuses to run while a part is missing.
set -euo pipefail

if [[ $# -lt 2 ]]; then
    echo "usage: $0 MESH_LIST OUT_DIR [N]" >&2
    exit 2
fi
MESH_LIST=$(realpath "$1")
OUT_DIR=$(realpath -m "$2")
SHARDS=${3:-16}
mkdir -p "$OUT_DIR/parts" "$OUT_DIR/logs"

# The task script (sbatch --wrap would run /bin/sh; this needs bash).
TASK="$OUT_DIR/render-task.sh"
cat > "$TASK" <<'TASK_SCRIPT'
#!/usr/bin/env bash
set -euo pipefail
SHARD="${SLURM_ARRAY_TASK_ID}/${SHARDS}"
PART=$(printf "part-%05d-of-%05d" "$SLURM_ARRAY_TASK_ID" "$SHARDS")
mapfile -t MINE < <(verdict shard select --shard "$SHARD" --by position "$MESH_LIST")
TMP="$OUT_DIR/parts/.$PART.tmp"
rm -rf "$TMP" && mkdir -p "$TMP"
if [[ ${#MINE[@]} -gt 0 ]]; then
    verdict render "${MINE[@]}" --out "$TMP" --force
fi
# Publish the part only when it is complete, so a killed task leaves no half part.
rm -rf "${OUT_DIR:?}/parts/$PART" && mv "$TMP" "$OUT_DIR/parts/$PART"
TASK_SCRIPT
chmod +x "$TASK"

# One array task per shard; %8 caps how many run at once.
ARRAY_JOB=$(sbatch --parsable \
    --job-name=verdict-render \
    --array="0-$((SHARDS - 1))%8" \
    --cpus-per-task=4 --mem=8G --time=04:00:00 \
    --output="$OUT_DIR/logs/render-%a.out" \
    --export=ALL,MESH_LIST="$MESH_LIST",OUT_DIR="$OUT_DIR",SHARDS="$SHARDS" \
    "$TASK")

sbatch --parsable \
    --job-name=verdict-render-merge \
    --dependency="afterok:$ARRAY_JOB" \
    --cpus-per-task=1 --mem=2G --time=01:00:00 \
    --output="$OUT_DIR/logs/merge.out" \
    --wrap="verdict shard merge '$OUT_DIR/parts' --out '$OUT_DIR/renders' --force"

echo "submitted array job $ARRAY_JOB ($SHARDS tasks) and its merge" >&2
