from .frozen_teacher import FrozenTeacher
from .logit_kd_distiller import LogitKDDistiller
from .proto_distiller import ProtoDistiller
from .student_interface import StudentInterface

__all__ = [
    'FrozenTeacher', 'LogitKDDistiller', 'ProtoDistiller', 'StudentInterface'
]
