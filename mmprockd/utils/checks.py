"""Former home of the input checks, kept for code written against
mmprockd 0.1.0 (a copy of its ``tools/train.py``).

The checks are now split by who uses them: checkpoint loading and its
error reasons in :mod:`mmprockd.utils.checkpoint_io` (models and engine
code import it), the command line's preflight in :mod:`mmprockd.preflight`.
Import from those; this module only re-exports them.
"""
import warnings

from mmprockd.preflight import *  # noqa: F401,F403
from mmprockd.preflight import __all__  # noqa: F401
from mmprockd.utils.checkpoint_io import \
    checkpoint_error_reason as _short_reason  # noqa: F401

warnings.warn(
    'mmprockd.utils.checks is deprecated: import the checks from '
    'mmprockd.preflight, and InputCheckError, load_checkpoint_file and '
    'checkpoint_error_reason from mmprockd.utils.checkpoint_io',
    DeprecationWarning,
    stacklevel=2)
