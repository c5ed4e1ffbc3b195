from .atomic_checkpoint_hook import (AtomicCheckpointHook, AtomicLocalBackend,
                                     find_resumable_checkpoint,
                                     is_complete_checkpoint,
                                     remove_stale_tmp_files)
from .config_fingerprint_hook import ConfigFingerprintHook
from .distill_schedule_hook import DistillScheduleHook
from .finite_checkpoint_hook import (FiniteCheckpointHook,
                                     check_finite_state_dict)
from .student_checkpoint_hook import StudentCheckpointHook

__all__ = [
    'AtomicCheckpointHook', 'AtomicLocalBackend', 'ConfigFingerprintHook',
    'DistillScheduleHook', 'FiniteCheckpointHook', 'StudentCheckpointHook',
    'check_finite_state_dict', 'find_resumable_checkpoint',
    'is_complete_checkpoint', 'remove_stale_tmp_files'
]
