#!/usr/bin/env bash
# Start NPROC copies of a data-parallel program on this host with the environment torchrun
# gives them (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT),
# for machines without torchrun. Stops all of them if one fails.
#
#   deploy/torchrun/launch.sh NPROC PROGRAM [ARGS...]
#
# Several hosts: run it on every host with NNODES, NODE_RANK and MASTER_ADDR set (the same
# MASTER_ADDR/MASTER_PORT everywhere, NODE_RANK 0..NNODES-1); ranks are numbered
# NODE_RANK * NPROC + LOCAL_RANK as torchrun numbers them.
set -euo pipefail

if [[ $# -lt 2 ]]; then
    echo "usage: $0 NPROC PROGRAM [ARGS...]" >&2
    exit 2
fi
NPROC=$1
shift
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
export MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
export MASTER_PORT=${MASTER_PORT:-29500}
export WORLD_SIZE=$((NNODES * NPROC))
export LOCAL_WORLD_SIZE=$NPROC

pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT

for ((local_rank = 0; local_rank < NPROC; local_rank++)); do
    LOCAL_RANK=$local_rank RANK=$((NODE_RANK * NPROC + local_rank)) "$@" &
    pids+=("$!")
done

status=0
for pid in "${pids[@]}"; do
    if ! wait "$pid"; then
        status=1
        cleanup
    fi
done
trap - EXIT
exit $status
