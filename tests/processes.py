"""What a process is doing, read from Linux's /proc: for waiting on facts, not on time."""

from __future__ import annotations

import array
import contextlib
import fcntl
import os
import platform
import resource
import signal
import termios
import typing as t
from pathlib import Path

if t.TYPE_CHECKING:
    import subprocess

PROC = Path("/proc")
WRITE_SYSCALL = {"x86_64": 1, "aarch64": 64}
"""The number of write(2), which /proc/<pid>/syscall shows while a process is in it."""


def _parent(pid: int) -> int | None:
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:  # gone meanwhile
        return None
    # The command name in parentheses may hold spaces: fields follow the last ')'.
    return int(stat.rsplit(")", 1)[1].split()[1])


def descendants(pid: int) -> list[int]:
    """Every living process below ``pid`` (children, grandchildren, ...)."""
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit() and (parent := _parent(int(entry.name))) is not None:
            children.setdefault(parent, []).append(int(entry.name))
    found, pending = [], list(children.get(pid, []))
    while pending:
        child = pending.pop()
        found.append(child)
        pending += children.get(child, [])
    return found


def kill_tree(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL a child we started and everything below it, if it still runs."""
    if process.poll() is not None:
        return
    for pid in descendants(process.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.kill()
    process.wait()


def command_line(pid: int) -> list[str]:
    """The arguments ``pid`` was started with; empty once it is gone."""
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def with_environment(name: str, value: str) -> list[int]:
    """Every living process whose environment has ``name=value`` (ours only: others
    can't be read, and a zombie's environment is empty)."""
    wanted = f"{name}={value}".encode()
    found = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environment = (entry / "environ").read_bytes()
        except OSError:
            continue
        if wanted in environment.split(b"\0"):
            found.append(int(entry.name))
    return found


def is_writing(pid: int, fd: int) -> bool:
    """Whether ``pid``'s main thread waits inside write(2) on file descriptor ``fd``.

    /proc/<pid>/syscall names the system call only while the thread is blocked
    in it (it says "running" otherwise).
    """
    try:
        fields = (PROC / str(pid) / "syscall").read_text().split()
    except OSError:
        return False
    number = WRITE_SYSCALL[platform.machine()]
    return len(fields) > 1 and fields[0] == str(number) and int(fields[1], 16) == fd


def pipe_is_full(read_end: int) -> bool:
    """Whether the pipe has less than a page of room left: a writer of more must wait.

    A pipe holds its capacity in pages, and a small write may leave the rest of
    its page unused, so a full pipe can hold somewhat less than its capacity.
    """
    unread = array.array("i", [0])
    fcntl.ioctl(read_end, termios.FIONREAD, unread)
    return unread[0] > fcntl.fcntl(read_end, fcntl.F_GETPIPE_SZ) - resource.getpagesize()
