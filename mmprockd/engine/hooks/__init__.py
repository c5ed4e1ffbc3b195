from .distill_schedule_hook import DistillScheduleHook
from .finite_checkpoint_hook import (FiniteCheckpointHook,
                                     check_finite_state_dict)
from .student_checkpoint_hook import StudentCheckpointHook

__all__ = [
    'DistillScheduleHook', 'FiniteCheckpointHook', 'StudentCheckpointHook',
    'check_finite_state_dict'
]
