"""An OS-level lock on a run folder: one writer at a time, and no stale lock after a kill.

The lock is ``fcntl.flock`` on ``RUN/.lock`` (or, per fold, ``RUN/fold{k}/.lock``): the kernel
releases it when the process dies, however it dies, so a ``kill -9`` never leaves a folder
locked. The file holds the holder's PID and command line for the refusal message.

Example:
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> with RunLock(d):
    ...     RunLock(d).acquire()
    Traceback (most recent call last):
    ...
    imet_kit.errors.RunLockedError: ...
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from imet_kit.errors import RunLockedError

LOCK_NAME = ".lock"


class RunLock:
    """``with RunLock(folder):`` holds an exclusive lock on ``folder`` (created if missing)."""

    def __init__(self, folder: str | os.PathLike, what: str = "run folder") -> None:
        self.folder = Path(folder)
        self.what = what
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        import fcntl

        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise RunLockedError(
                f"The {self.what} '{self.folder}' is in use by {holder}. Wait for it to finish "
                f"(or stop it), or choose another --out."
            ) from None
        os.ftruncate(fd, 0)
        prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"
        prog = "imet-kit" if prog in ("__main__.py", "imet-kit") else prog
        cmd = " ".join([prog, *sys.argv[1:2]])
        os.pwrite(fd, f"PID {os.getpid()} ({cmd})\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            import fcntl

            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
