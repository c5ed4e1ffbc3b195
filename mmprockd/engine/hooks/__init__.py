from .distill_schedule_hook import DistillScheduleHook
from .student_checkpoint_hook import StudentCheckpointHook

__all__ = ['DistillScheduleHook', 'StudentCheckpointHook']
