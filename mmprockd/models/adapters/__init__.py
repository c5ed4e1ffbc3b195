from .level_adapter import LevelAdapter
from .tokens_to_map import infer_grid, tokens_to_map

__all__ = ['LevelAdapter', 'tokens_to_map', 'infer_grid']
