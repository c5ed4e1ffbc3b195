from .branch_eval import branch_as_student, evaluate_branch
from .hooks import *  # noqa: F401,F403
from .student_export import export_student, student_config, student_state_dict

__all__ = [
    'branch_as_student', 'evaluate_branch', 'export_student', 'student_config',
    'student_state_dict'
]
