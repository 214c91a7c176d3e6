"""Hostile disks for the SQLite store: a tiny tmpfs that can be filled to the last byte, a read-only
directory, and a database another connection holds locked.

Mounting needs root (or CAP_SYS_ADMIN); elsewhere the tests that need it skip, saying why.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["SmallDisk", "WriteLockHolder", "read_only_directory", "small_disk_or_skip"]


class SmallDisk:
    """A tmpfs of ``size`` bytes mounted at ``path``; :meth:`fill` takes every free byte, :meth:`free` gives
    them back, :meth:`read_only` remounts it read-only."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._filler = path / "filler.bin"

    def fill(self) -> None:
        """Write a filler file until the disk is full (ENOSPC), to the last block."""
        with open(self._filler, "ab", buffering=0) as out:
            block = b"\0" * 65536
            while len(block) >= 1:
                try:
                    out.write(block)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    block = block[: len(block) // 2]

    def free(self) -> None:
        """Remove the filler: the disk has room again."""
        with contextlib.suppress(FileNotFoundError):
            self._filler.unlink()

    def remount(self, option: str) -> None:
        """``mount -o remount,<option>`` (``ro`` or ``rw``)."""
        subprocess.run(["mount", "-o", f"remount,{option}", str(self.path)], check=True, capture_output=True)


def _can_mount() -> str | None:
    """``None`` when tmpfs can be mounted here, else why not."""
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root"
    return None


@contextlib.contextmanager
def small_disk_or_skip(size: str = "2m") -> Iterator[SmallDisk]:
    """A fresh tmpfs of ``size``; skipped (with the reason) where tmpfs cannot be mounted."""
    why = _can_mount()
    if why is not None:
        pytest.skip(f"needs a tiny tmpfs for a full disk: {why}")
    with tempfile.TemporaryDirectory(prefix="sf-adv-disk-") as mountpoint:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0777", "tmpfs", mountpoint],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"needs a tiny tmpfs for a full disk: mount failed ({done.stderr.strip()})")
        try:
            yield SmallDisk(Path(mountpoint))
        finally:
            subprocess.run(["umount", "-l", mountpoint], capture_output=True, check=False)


class WriteLockHolder:
    """Another connection that takes ``path``'s write lock (``BEGIN IMMEDIATE``) on :meth:`take` and holds it
    until :meth:`release`, from a thread of its own, as another process would (SQLite locks are per
    connection). :meth:`take` may be called from any thread (e.g. an emulated agent, mid-turn)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._release = threading.Event()
        self._thread: threading.Thread | None = None

    def take(self) -> None:
        """Take the write lock; return once it is held."""
        taken = threading.Event()
        self._release.clear()

        def hold() -> None:
            conn = sqlite3.connect(self.path, timeout=5, isolation_level=None, check_same_thread=False)
            try:
                conn.execute("BEGIN IMMEDIATE")
                taken.set()
                self._release.wait(30)
                conn.execute("ROLLBACK")
            finally:
                conn.close()

        self._thread = threading.Thread(target=hold, name="sqlite-lock-holder", daemon=True)
        self._thread.start()
        if not taken.wait(5):
            raise RuntimeError(f"could not take the write lock of {self.path}")

    def release(self) -> None:
        """Give the lock back (a no-op when it is not held)."""
        self._release.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None


@contextlib.contextmanager
def read_only_directory(scratch: Path) -> Iterator[Path]:
    """A directory nobody may write to: a read-only tmpfs as root (root ignores file modes), a 0555
    directory otherwise."""
    if os.geteuid() != 0:
        path = scratch / "read-only"
        path.mkdir()
        path.chmod(0o555)
        try:
            yield path
        finally:
            path.chmod(0o755)
        return
    with tempfile.TemporaryDirectory(prefix="sf-adv-ro-") as mountpoint:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", mountpoint],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"needs a read-only directory: root ignores file modes and mount failed ({done.stderr})")
        try:
            yield Path(mountpoint)
        finally:
            subprocess.run(["umount", "-l", mountpoint], capture_output=True, check=False)
