from .frozen_teacher import FrozenTeacher
from .proto_distiller import ProtoDistiller
from .student_interface import StudentInterface

__all__ = ['FrozenTeacher', 'ProtoDistiller', 'StudentInterface']
