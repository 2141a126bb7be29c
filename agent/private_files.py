"""Files only this service may read: the data dir ``0700``; the database, the lock and generated
secrets ``0600``.

Under systemd, ``StateDirectoryMode=0700`` and ``UMask=0077`` give these modes already;
elsewhere the usual umask (022) would leave the database and the first-run keys readable by
every local user, so the modes are set at creation here. A file created by root (``sudo
alert-agent keys ...`` on a service's data dir) is handed to the directory's owner, or the
service could no longer open it.
"""

from __future__ import annotations

import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) if needed; a directory made here is ``0700``."""
    if path.is_dir():
        return
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)


def _owned_like_dir(fd: int, directory: Path) -> None:
    if os.geteuid() != 0:
        return
    st = directory.stat()
    if (st.st_uid, st.st_gid) != (0, 0):
        os.fchown(fd, st.st_uid, st.st_gid)


def create_private_file(path: Path) -> bool:
    """Create an empty ``0600`` file unless one exists; True when it was created here."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    except FileExistsError:
        return False
    try:
        _owned_like_dir(fd, path.parent)
    finally:
        os.close(fd)
    return True


def open_private(path: Path, flags: int) -> int:
    """``os.open`` creating a missing file ``0600`` (owned like its directory under root)."""
    existed = path.exists()
    fd = os.open(path, flags | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    if not existed:
        try:
            _owned_like_dir(fd, path.parent)
        except OSError:
            os.close(fd)
            raise
    return fd


def write_private_file(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically (temp file, fsync, rename), mode ``0600``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            _owned_like_dir(fh.fileno(), path.parent)
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)  # the rename itself survives a power cut
    finally:
        os.close(dir_fd)
