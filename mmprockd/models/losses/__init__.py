from .assign_loss import PrototypeAssignLoss
from .box_distill_loss import BoxDistillLoss
from .consistency_kl_loss import ConsistencyKLLoss
from .feature_mimic_loss import BranchMimicLoss, FeatureMimicLoss
from .pseudo_label_loss import PseudoLabelLoss

__all__ = [
    'BoxDistillLoss', 'BranchMimicLoss', 'ConsistencyKLLoss',
    'FeatureMimicLoss', 'PrototypeAssignLoss', 'PseudoLabelLoss'
]
