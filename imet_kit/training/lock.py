"""OS-level locks on a run folder: one writer per fold, a short run-level lock, no stale lock.

Each fold being trained holds ``RUN/fold{k}/.lock`` for as long as it trains, so several
processes (or machines sharing the run folder) train different folds at once and a second one
on the same fold is refused at once, naming the holder. ``RUN/.lock`` is held only briefly: to
create the run folder (config.json, labels.csv, folds.csv) and to finish the run (OOF,
thresholds, plots, summary); a process that needs it waits up to :data:`RUN_LOCK_WAIT_S`.

The lock is ``fcntl.flock``: the kernel releases it when the process dies, however it dies, so a
``kill -9`` never leaves a folder locked. On a local disk it holds between processes; on Linux
NFS clients ``flock`` is carried by NFS byte-range locks (NFSv4, or NFSv3 with lockd), so it
holds between machines sharing the folder; file systems without network locking (some FUSE and
SMB mounts) give no protection across machines. The file holds the holder's PID and command
for the refusal message.

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

import logging
import os
import socket
import sys
import time
from pathlib import Path

from imet_kit.errors import RunLockedError

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"
# creating a run (folds of 100k images) or finishing it (a per-class threshold search) takes
# seconds to minutes; a process that needs the run-level lock waits that long for it
RUN_LOCK_WAIT_S = 600.0


class RunLock:
    """``with RunLock(folder):`` holds an exclusive lock on ``folder`` (created if missing).

    Args:
        folder: the run folder, or a fold's folder.
        what: how the refusal message names it ("run folder", "fold 1 of the run").
        wait: seconds to wait for a holder to let go before refusing (0: refuse at once).
    """

    def __init__(self, folder: str | os.PathLike, what: str = "run folder",
                 wait: float = 0.0) -> None:
        self.folder = Path(folder)
        self.what = what
        self.wait = wait
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> RunLock:
        import fcntl

        deadline, told = time.monotonic() + self.wait, False
        while True:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _holder(fd)
                os.close(fd)
                if time.monotonic() >= deadline:
                    raise RunLockedError(
                        f"The {self.what} '{self.folder}' is in use by {holder}. Wait for it to "
                        f"finish (or stop it), or choose another --out."
                    ) from None
                if not told:
                    log.info("waiting for %s to release %s", holder, self.path)
                    told = True
                time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
                continue
            if _same_file(fd, self.path):
                break
            # the file was removed (a failed start cleaning up) while we waited: lock the new one
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"PID {os.getpid()} on {socket.gethostname()} ({_command()})\n".encode(), 0)
        self._fd = fd
        return self

    def ensure_linked(self) -> None:
        """Lock again if a cleanup removed the lock file while it was held (refuses if taken)."""
        if self._fd is not None and not _same_file(self._fd, self.path):
            self.release()
            self.acquire()

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


def lock_holder(folder: str | os.PathLike) -> str | None:
    """Who holds ``folder``'s lock ("PID 12 on host (imet-kit train)"), or None if no one.

    Creates nothing: a folder without a lock file is free.
    """
    import fcntl

    try:
        fd = os.open(Path(folder) / LOCK_NAME, os.O_RDWR)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return _holder(fd)
    finally:
        os.close(fd)  # closing drops the probe's own lock
    return None


def _holder(fd: int) -> str:
    return os.pread(fd, 4096, 0).decode(errors="replace").strip() or "another process"


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


def _command() -> str:
    prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"
    prog = "imet-kit" if prog in ("__main__.py", "imet-kit") else prog
    return " ".join([prog, *sys.argv[1:2]])
