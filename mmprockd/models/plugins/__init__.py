from .task_adaptive_augment import TaskAdaptiveAugment

__all__ = ['TaskAdaptiveAugment']
