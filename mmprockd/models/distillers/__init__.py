from .base_distiller import BaseDistiller
from .feature_distiller import FeatureDistiller
from .frozen_teacher import FrozenTeacher
from .logit_kd_distiller import LogitKDDistiller
from .pkd_distiller import PKDDistiller
from .proto_distiller import ProtoDistiller
from .student_interface import StudentInterface

__all__ = [
    'BaseDistiller', 'FeatureDistiller', 'FrozenTeacher', 'LogitKDDistiller',
    'PKDDistiller', 'ProtoDistiller', 'StudentInterface'
]
