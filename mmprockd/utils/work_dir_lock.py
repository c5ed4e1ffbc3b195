"""One training run at a time in a work dir.

Two runs on one ``--work-dir`` interleave their logs and overwrite each
other's checkpoints and ``last_checkpoint``. :class:`WorkDirLock` holds an
exclusive ``flock`` on ``<work dir>/.train.lock`` for the life of the run
and writes the run's PID into it; a second run finds the lock held and is
refused with that PID. The kernel drops the lock when the process ends,
however it ends (a kill included), so a lock is never left stale.
"""
import os
import os.path as osp
from typing import Optional

from .checkpoint_io import InputCheckError

try:
    import fcntl
except ImportError:  # not POSIX: no lock
    fcntl = None

LOCK_NAME = '.train.lock'


class WorkDirLock:
    """An exclusive lock on a work dir.

    Args:
        work_dir (str): The run's work dir; made if it does not exist.
    """

    def __init__(self, work_dir: str) -> None:
        self.work_dir = work_dir
        self.path = osp.join(work_dir, LOCK_NAME)
        self._fd: Optional[int] = None

    def acquire(self) -> None:
        """Take the lock and write this process's PID into the file.

        Raises:
            InputCheckError: another live process holds it; the message
                names its PID.
        """
        if fcntl is None or self._fd is not None:
            return
        os.makedirs(self.work_dir, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 64).decode(errors='replace').strip()
            os.close(fd)
            raise InputCheckError(
                f'--work-dir {self.work_dir} is in use by another training '
                f'run (PID {holder or "unknown"}, which holds {self.path}): '
                'wait for it to end or stop it, or train into another '
                '--work-dir') from None
        os.ftruncate(fd, 0)
        os.write(fd, f'{os.getpid()}\n'.encode())
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (the file stays, empty of meaning)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
