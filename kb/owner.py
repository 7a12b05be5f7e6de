"""Which process owns something on disk (the index lock, a build folder being written): its PID,
its start time and host, and since when. A PID alone is not enough: after the owner dies the
kernel may give its PID to an unrelated process, so the start time (field 22 of
/proc/<pid>/stat, clock ticks after boot) must match too."""
from __future__ import annotations

import json
import os
import socket
import sys
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

_PROC = Path("/proc")


@dataclass(frozen=True)
class Owner:
    """A process, as recorded by itself (internal to kb and ingest; not a public data type)."""

    pid: int
    start: str  # start time from /proc/<pid>/stat; "" where /proc is not available
    host: str  # a process on another host (shared folder) cannot be probed
    since: str  # ISO time (UTC) the record was written
    command: str = ""  # what the process runs, for messages

    def describe(self) -> str:
        """'PID 1234 (python -m ingest), since 2026-12-03 14:30:05 UTC' for messages."""
        where = "" if self.host == socket.gethostname() else f" on host {self.host}"
        what = f" ({self.command})" if self.command else ""
        return f"PID {self.pid}{where}{what}, since {self.since}"


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time) of a process from /proc, or None when no such process exists."""
    try:
        text = (_PROC / str(pid) / "stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    fields = text[text.rfind(")") + 2:].split()  # the command name in (...) may hold spaces
    if len(fields) < 20:
        return None
    return fields[0], fields[19]  # field 3 (state) and field 22 (starttime) of proc(5)


def _has_proc() -> bool:
    return (_PROC / "self" / "stat").exists()


def _command() -> str:
    argv = list(sys.argv)
    if argv and argv[0].endswith("__main__.py"):  # python -m package
        argv[0] = f"python -m {Path(argv[0]).parent.name}"
    return " ".join(argv)[:160]


def of_process(pid: int, command: str = "") -> Owner | None:
    """The record of a running process on this host (None if there is none)."""
    if _has_proc():
        stat = _proc_stat(pid)
        if stat is None:
            return None
        start = stat[1]
    else:
        start = ""
    since = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return Owner(pid=pid, start=start, host=socket.gethostname(), since=since, command=command)


def current() -> Owner:
    """This process, now."""
    me = of_process(os.getpid(), _command())
    return me if me is not None else Owner(os.getpid(), "", socket.gethostname(), "", _command())


def is_running(owner: Owner) -> bool:
    """False only when the owner is certainly gone: no such PID, a zombie, or the PID now
    belongs to a process started at another time. A process on another host counts as running
    (it cannot be probed from here)."""
    if owner.host != socket.gethostname():
        return True
    if _has_proc():
        stat = _proc_stat(owner.pid)
        if stat is None or stat[0] == "Z":
            return False
        return not owner.start or stat[1] == owner.start
    try:  # no /proc (macOS, ...): the PID alone
        os.kill(owner.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def to_json(owner: Owner) -> str:
    return json.dumps(asdict(owner), ensure_ascii=False)


def from_json(text: str) -> Owner | None:
    """The record in `text`, or None if it holds none (empty, half-written, not ours)."""
    try:
        data = json.loads(text)
        return Owner(pid=int(data["pid"]), start=str(data["start"]), host=str(data["host"]),
                     since=str(data["since"]), command=str(data.get("command", "")))
    except (ValueError, TypeError, KeyError):
        return None


def read_owner(path: Path) -> Owner | None:
    try:
        return from_json(Path(path).read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return None


def write_owner(path: Path, owner: Owner) -> None:
    """Write the record atomically (a reader sees none or all of it)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(to_json(owner), encoding="utf-8")
    os.replace(tmp, path)
