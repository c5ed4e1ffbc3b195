from .augmented_neck import AugmentedNeck
from .prototype_learner import PrototypeLearner

__all__ = ['AugmentedNeck', 'PrototypeLearner']
