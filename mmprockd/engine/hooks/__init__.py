from mmprockd.utils.atomic_write import (AtomicLocalBackend, DiskFullError,
                                         remove_stale_tmp_files)
from ..resume_scan import find_resumable_checkpoint, is_complete_checkpoint
from .atomic_checkpoint_hook import AtomicCheckpointHook
from .branch_eval_hook import BranchEvalHook
from .config_fingerprint_hook import ConfigFingerprintHook
from .distill_schedule_hook import DistillScheduleHook
from .exact_resume_hook import (EpochWorkerSeed, ExactResumeHook,
                                get_rng_state, set_rng_state, worker_seed)
from .finite_checkpoint_hook import (FiniteCheckpointHook,
                                     check_finite_state_dict)
from .preemption_hook import (PREEMPTED_EXIT, PreemptionHook,
                              ResumableEpochBasedTrainLoop)
from .student_checkpoint_hook import StudentCheckpointHook

__all__ = [
    'AtomicCheckpointHook', 'AtomicLocalBackend', 'BranchEvalHook',
    'ConfigFingerprintHook', 'DiskFullError', 'DistillScheduleHook',
    'EpochWorkerSeed', 'ExactResumeHook', 'get_rng_state', 'set_rng_state',
    'worker_seed', 'FiniteCheckpointHook', 'StudentCheckpointHook',
    'check_finite_state_dict', 'find_resumable_checkpoint',
    'is_complete_checkpoint', 'remove_stale_tmp_files', 'PREEMPTED_EXIT',
    'PreemptionHook', 'ResumableEpochBasedTrainLoop'
]
