from .consistency_kl_loss import ConsistencyKLLoss
from .feature_mimic_loss import FeatureMimicLoss

__all__ = ['ConsistencyKLLoss', 'FeatureMimicLoss']
