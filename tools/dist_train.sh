#!/usr/bin/env bash
# Train on the GPUs of one or more nodes with torchrun (one process per GPU).
#   bash tools/dist_train.sh CONFIG GPUS [train.py args]
# Environment: NNODES (1), NODE_RANK (0), MASTER_ADDR (127.0.0.1),
# PORT (29500), PYTHON (python). Without CUDA the processes run on the CPU
# and talk through gloo.
set -euo pipefail
if [[ $# -lt 2 ]]; then
    echo "usage: $0 CONFIG GPUS [train.py args]" >&2
    exit 2
fi
CONFIG=$1
GPUS=$2
shift 2
ROOT="$(cd "$(dirname "$0")/.." && pwd)"

# `python -m torch.distributed.run` is torchrun, run by this environment's
# Python
PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" \
exec "${PYTHON:-python}" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" \
    --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" \
    --master_port="${PORT:-29500}" \
    --nproc_per_node="$GPUS" \
    "$ROOT/tools/train.py" "$CONFIG" --launcher pytorch "$@"
