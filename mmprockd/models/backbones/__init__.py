# Copyright (c) mmprockd contributors. All rights reserved.
from .cached_frozen_backbone import CachedFrozenBackbone, content_key

__all__ = ['CachedFrozenBackbone', 'content_key']
