#!/usr/bin/env bash
# Train on a Slurm cluster, one task per GPU.
#   bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py args]
# Environment: GPUS (8, total), GPUS_PER_NODE (8), CPUS_PER_TASK (5),
# SRUN_ARGS (extra srun options, e.g. "--quotatype=auto"), PYTHON (python).
set -euo pipefail
if [[ $# -lt 4 ]]; then
    echo "usage: $0 PARTITION JOB_NAME CONFIG WORK_DIR [train.py args]" >&2
    exit 2
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
shift 4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
# SRUN_ARGS is split into words on purpose
read -r -a EXTRA <<< "${SRUN_ARGS:-}"

PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" \
exec srun -p "$PARTITION" \
    --job-name="$JOB_NAME" \
    --gres="gpu:$GPUS_PER_NODE" \
    --ntasks="$GPUS" \
    --ntasks-per-node="$GPUS_PER_NODE" \
    --cpus-per-task="$CPUS_PER_TASK" \
    --kill-on-bad-exit=1 \
    "${EXTRA[@]}" \
    "${PYTHON:-python}" -u "$ROOT/tools/train.py" "$CONFIG" \
    --work-dir="$WORK_DIR" --launcher=slurm "$@"
