#!/usr/bin/env bash
# Train on a Slurm cluster, one task per GPU.
#   bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py args]
# Environment: GPUS (8, total), GPUS_PER_NODE (8), CPUS_PER_TASK (5),
# SRUN_ARGS (extra srun options, e.g. "--quotatype=auto"), PYTHON (python),
# SIGNAL_TIME (120), MAX_RESTARTS (10).
#
# Preemption: srun sends SIGTERM SIGNAL_TIME seconds before the time limit
# (--signal); tools/train.py then finishes its step, saves a checkpoint and
# exits with status 75. On that status the job goes on by itself: inside a
# batch job (sbatch --requeue) the job is requeued with `scontrol requeue`
# and, started again, resumes (SLURM_RESTART_COUNT > 0 adds --resume);
# otherwise srun runs again with --resume, at most MAX_RESTARTS times.
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
SIGNAL_TIME=${SIGNAL_TIME:-120}
MAX_RESTARTS=${MAX_RESTARTS:-10}
PREEMPTED=75  # tools/train.py's status after a SIGTERM or SIGINT
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
# SRUN_ARGS is split into words on purpose
read -r -a EXTRA <<< "${SRUN_ARGS:-}"
RESUME=()
if [[ "${SLURM_RESTART_COUNT:-0}" -gt 0 ]]; then
    RESUME=(--resume)  # a requeued batch job
fi

restarts=0
while true; do
    status=0
    PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" \
    srun -p "$PARTITION" \
        --job-name="$JOB_NAME" \
        --gres="gpu:$GPUS_PER_NODE" \
        --ntasks="$GPUS" \
        --ntasks-per-node="$GPUS_PER_NODE" \
        --cpus-per-task="$CPUS_PER_TASK" \
        --kill-on-bad-exit=1 \
        --signal="TERM@$SIGNAL_TIME" \
        "${EXTRA[@]}" \
        "${PYTHON:-python}" -u "$ROOT/tools/train.py" "$CONFIG" \
        --work-dir="$WORK_DIR" --launcher=slurm "$@" "${RESUME[@]}" \
        || status=$?
    if [[ $status -ne $PREEMPTED ]]; then
        exit "$status"
    fi
    if [[ -n "${SLURM_JOB_ID:-}" ]]; then
        echo "$0: training stopped (status $PREEMPTED): requeueing job" \
            "$SLURM_JOB_ID" >&2
        if scontrol requeue "$SLURM_JOB_ID"; then
            exit "$status"
        fi
        echo "$0: job $SLURM_JOB_ID cannot be requeued (not a batch job," \
            "or submitted with --no-requeue)" >&2
    fi
    if [[ $restarts -ge $MAX_RESTARTS ]]; then
        echo "$0: training stopped (status $PREEMPTED) $restarts times" \
            "after restarts; giving up (MAX_RESTARTS=$MAX_RESTARTS)" >&2
        exit "$status"
    fi
    restarts=$((restarts + 1))
    echo "$0: training stopped (status $PREEMPTED): resuming (restart" \
        "$restarts of $MAX_RESTARTS)" >&2
    RESUME=(--resume)
done
