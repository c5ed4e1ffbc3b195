from .assign_loss import PrototypeAssignLoss
from .consistency_kl_loss import ConsistencyKLLoss
from .feature_mimic_loss import BranchMimicLoss, FeatureMimicLoss
from .pseudo_label_loss import PseudoLabelLoss

__all__ = [
    'BranchMimicLoss', 'ConsistencyKLLoss', 'FeatureMimicLoss',
    'PrototypeAssignLoss', 'PseudoLabelLoss'
]
