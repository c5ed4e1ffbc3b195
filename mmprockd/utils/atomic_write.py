"""Files written whole or not at all, and a full disk named as such.

:class:`AtomicLocalBackend` (mmengine file backend
``'mmprockd_atomic_local'``) writes to ``<name>.tmp<pid>``, flushes it to
disk and renames it over the name, so a kill at any moment leaves either the
old file or the new one. A write that does not fit raises
:class:`DiskFullError`, naming the file, the bytes needed and the bytes
free. :func:`remove_stale_tmp_files` removes what killed writers left.
Used by the checkpoint hooks and the student export.
"""
import errno
import os
import os.path as osp
import re
import shutil
from typing import List, Optional

from mmengine.fileio import LocalBackend, register_backend
from mmengine.logging import print_log

ATOMIC_BACKEND = 'mmprockd_atomic_local'
POINTER = 'last_checkpoint'  # the file mmengine's auto-resume reads
_TMP = re.compile(r'^(?P<name>.+)\.tmp(?P<pid>\d+)$')


def tmp_path(filepath: str) -> str:
    """Where :class:`AtomicLocalBackend` writes ``filepath`` first."""
    return f'{filepath}.tmp{os.getpid()}'


def fsync_file(path: str) -> None:
    """Flush ``path`` to disk (before a rename makes it visible)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AtomicLocalBackend(LocalBackend):
    """mmengine's ``LocalBackend`` whose ``put`` and ``put_text`` never
    leave a partly written file under the target name.

    The bytes go to ``<filepath>.tmp<pid>`` through ``LocalBackend`` itself,
    are flushed to disk, and the file is renamed over ``filepath``
    (``os.replace``: atomic on POSIX and Windows within one file system).
    On any error the temporary file is removed and the target is untouched.
    Registered as mmengine file backend ``'mmprockd_atomic_local'``, with no
    URI prefix: it is used only where asked for by name.
    """

    def put(self, obj: bytes, filepath) -> None:
        self._atomic(super().put, obj, str(filepath))

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        self._atomic(super().put_text, obj, str(filepath), encoding)

    @staticmethod
    def _atomic(write, obj, filepath: str, *args) -> None:
        tmp = tmp_path(filepath)
        try:
            write(obj, tmp, *args)
            fsync_file(
                tmp)  # the rename must not reach the disk before the data
            os.replace(tmp, filepath)
        except BaseException as err:
            if osp.lexists(tmp):
                os.remove(tmp)
            if is_disk_full(err):
                raise DiskFullError(filepath, len(obj)) from err
            raise


def is_disk_full(err: BaseException) -> bool:
    """Whether ``err`` says the disk (or the user's quota) is full."""
    return isinstance(err,
                      OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)


class DiskFullError(OSError):
    """A write that did not fit on the disk, naming the file, the bytes it
    needed, the bytes free and, once known (:meth:`with_last`), the last
    complete checkpoint of the run. The file under that name is untouched
    (the write went to a temporary file, removed)."""

    def __init__(self,
                 path: str,
                 nbytes: Optional[int],
                 last: Optional[str] = None) -> None:
        self.path, self.nbytes, self.last = path, nbytes, last
        try:
            free = f'{shutil.disk_usage(osp.dirname(path) or ".").free} bytes'
        except OSError:
            free = 'unknown'
        need = 'an unknown number of' if nbytes is None else str(nbytes)
        message = (f'no space left on the device to write {path}: {need} '
                   f'bytes needed, {free} free')
        if last:
            message += f'; the last complete checkpoint is {last}'
        message += ('. Free some space (or move the work dir), then run '
                    'again with --resume')
        super().__init__(errno.ENOSPC, message, path)

    def __str__(self) -> str:
        return self.strerror

    def __reduce__(self):
        return type(self), (self.path, self.nbytes, self.last)

    def with_last(self, last: Optional[str]) -> 'DiskFullError':
        """The same error, naming ``last`` as the last good checkpoint."""
        return DiskFullError(self.path, self.nbytes, last)


register_backend(ATOMIC_BACKEND, AtomicLocalBackend, force=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


# what mmprockd's writers write through ``<name>.tmp<pid>``: checkpoints and
# student exports, last_checkpoint, the student's config
_OURS = re.compile(r'.+\.pth|' + POINTER + r'|student_config\.py')
# the ``tempfile.mkstemp(suffix='.tmp')`` files of a student export writer
_MKSTEMP = re.compile(r'tmp[a-z0-9_]{8}\.tmp')


def remove_stale_tmp_files(folder: str, logger='current') -> List[str]:
    """Delete the temporary files that a killed process left in
    ``folder``: ``<name>.tmp<pid>`` of checkpoints and student exports
    (``*.pth``), of ``last_checkpoint`` and of ``student_config.py``, and
    the ``tmpXXXXXXXX.tmp`` files of a ``mkstemp`` student export writer.

    A ``<name>.tmp<pid>`` file whose process is still alive (another run
    writing into the same folder) is kept.

    Returns:
        list[str]: the paths removed.
    """
    removed = []
    if not osp.isdir(folder):
        return removed
    for entry in sorted(os.listdir(folder)):
        match = _TMP.match(entry)
        if match:
            if not _OURS.fullmatch(match['name']) or _pid_alive(
                    int(match['pid'])):
                continue
        elif not _MKSTEMP.fullmatch(entry):
            continue
        path = osp.join(folder, entry)
        if osp.isfile(path):
            os.remove(path)
            removed.append(path)
            print_log(
                f'removed {path}: a write that was killed before it ended',
                logger=logger)
    return removed
