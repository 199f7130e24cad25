"""Append-only journal segments of turns: the part of write-behind that survives SIGKILL.

A segment is one file, `turns-<ns>-<pid>-<n>.jsonl`, one msgspec-JSON turn per
line, written with a single `os.write` per turn. Once `write` returns, the
bytes belong to the kernel: killing the process (SIGKILL, OOM killer, a crash)
cannot take them back. Only an OS crash or power loss can, and only for bytes
not yet fsynced; see `TurnWriter` for when it syncs.

The writer holds an exclusive `flock` on each of its segments for as long as
they may hold turns not yet in SQL. The kernel drops the lock when the process
dies, so "I can lock it" means exactly "its owner is gone": that is how a
starting writer tells orphaned segments (replay them) from those of a live
process sharing the directory (leave them). A segment is created under a
temporary name and renamed only once locked, so no one can claim it early.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import time
import uuid
from pathlib import Path

import msgspec

from store.models import Turn

PREFIX = "turns-"
SUFFIX = ".jsonl"
_counter = itertools.count()
_decoder = msgspec.json.Decoder(Turn)


class Segment:
    """One locked journal file. Sync methods: a turn costs one `os.write` syscall."""

    __slots__ = ("fd", "incomplete", "path", "size")

    def __init__(self, path: Path, fd: int, size: int = 0):
        self.path = path
        self.fd = fd
        self.size = size
        # A write failed (disk full): the file lacks some turns its batch holds in memory.
        self.incomplete = False

    @classmethod
    def create(cls, directory: Path) -> Segment:
        tmp = directory / f".{uuid.uuid4().hex}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            name = f"{PREFIX}{time.time_ns():020d}-{os.getpid()}-{next(_counter):09d}{SUFFIX}"
            path = directory / name
            os.rename(tmp, path)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        return cls(path, fd)

    def append(self, data: bytes | bytearray | memoryview) -> None:
        """Write all of `data`; raises OSError (ENOSPC, EIO) for the caller to count."""
        view = memoryview(data)
        try:
            while view:
                written = os.write(self.fd, view)
                self.size += written
                view = view[written:]
        except OSError:
            self.incomplete = True
            raise

    def sync(self) -> None:
        os.fsync(self.fd)

    def release(self) -> None:
        """Close (dropping the lock) but keep the file: the next start replays it."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def remove(self) -> None:
        """Everything in it is in SQL: unlink while still locked, then close."""
        try:
            self.path.unlink(missing_ok=True)
        finally:
            self.release()


def encode_into(turn: Turn, buffer: bytearray, encoder: msgspec.json.Encoder) -> None:
    """`buffer` becomes the turn's journal line (reusing its memory)."""
    encoder.encode_into(turn, buffer)
    buffer.extend(b"\n")


def read_turns(path: Path) -> tuple[list[Turn], int]:
    """The turns of a segment and the number of unreadable lines skipped.

    A torn last line (process killed inside `write`, or a failed write on a
    full disk) is skipped rather than blocking the rest of the replay.
    """
    turns: list[Turn] = []
    bad = 0
    with open(path, "rb") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                turns.append(_decoder.decode(line))
            except msgspec.DecodeError:
                bad += 1
    return turns, bad


def claim_orphans(directory: Path) -> list[Segment]:
    """Lock every segment whose owner is gone, oldest first; leave live ones alone.

    Also removes temporary files left by a creator killed before its rename.
    """
    claimed: list[Segment] = []
    for path in sorted(directory.glob(f"{PREFIX}*{SUFFIX}"), key=_segment_order):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue  # its owner flushed and removed it just now
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue  # a live writer owns it
        stat = os.fstat(fd)
        if stat.st_nlink == 0:
            os.close(fd)  # removed between listing and locking: already in SQL
            continue
        claimed.append(Segment(path, fd, stat.st_size))
    for tmp in directory.glob(".*.tmp"):
        _remove_unlocked(tmp)
    return claimed


def _remove_unlocked(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        path.unlink(missing_ok=True)
    except BlockingIOError:
        pass  # being created by a live writer right now
    finally:
        os.close(fd)


def _segment_order(path: Path) -> tuple[int, int, int]:
    """(created ns, pid, counter) from the name; odd names sort first, by 0s."""
    parts = path.name[len(PREFIX):-len(SUFFIX)].split("-")
    try:
        return int(parts[0]), int(parts[1]), int(parts[2])
    except (IndexError, ValueError):
        return 0, 0, 0
