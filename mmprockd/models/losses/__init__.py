from .consistency_kl_loss import ConsistencyKLLoss
from .feature_mimic_loss import BranchMimicLoss, FeatureMimicLoss

__all__ = ['BranchMimicLoss', 'ConsistencyKLLoss', 'FeatureMimicLoss']
