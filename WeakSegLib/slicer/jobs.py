"""Background jobs: a WeakSeg CLI command in its own process group, read without blocking.

Slicer's GUI thread must never wait on training or inference, and a cancelled job must leave no
process behind (a forgotten DataLoader worker keeps a GPU busy). So a job is a subprocess
``python -m WeakSegLib.cli <command> ... --events -`` started in a new session (its own process
group); two reader threads move its stdout events and stderr log lines into a queue and a ring
buffer; the panel calls :meth:`Job.poll` from a timer. Cancel interrupts the whole group
(SIGINT: the CLI marks the stage failed and the run stays resumable), then kills what is left.

No Qt here: the same runner works headless (tests, scripts) and inside Slicer.
"""
from __future__ import annotations

import collections
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..events import parse_events
from .progress import RunProgress

#: Lines of the child's output kept for error messages.
LOG_LINES = 400
IS_WINDOWS = sys.platform == "win32"


def library_root() -> Path:
    """The folder holding ``WeakSegLib``: put on the child's PYTHONPATH so it imports there too."""
    return Path(__file__).resolve().parents[2]


def python_executable() -> str:
    """The Python to run the CLI with: Slicer's ``PythonSlicer`` inside Slicer, else this one.

    ``PythonSlicer`` is Slicer's Python with Slicer's environment (site-packages where
    ``pip_install`` put torch); the GUI executable itself cannot run ``-m``.
    """
    if "slicer" in sys.modules and getattr(sys.modules["slicer"], "app", None) is not None:
        found = shutil.which("PythonSlicer")
        if found:
            return found
    return sys.executable


def cli_command(command: str, arguments: Sequence[str] = (), python: str | None = None
                ) -> list[str]:
    """``[python, -m, WeakSegLib.cli, command, *arguments, --events, -, --quiet]``.

    ``--quiet`` because the events already carry the progress; stderr keeps warnings and errors.
    """
    return [python or python_executable(), "-m", "WeakSegLib.cli", command,
            *[str(a) for a in arguments], "--events", "-", "--quiet"]


def child_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment plus unbuffered output and WeakSegLib on PYTHONPATH."""
    env = dict(os.environ)
    paths = [str(library_root())] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("PYTHONIOENCODING", "utf-8")
    env.update(extra or {})
    return env


# ------------------------------------------------------------------ process groups

def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group; [] when none is left.

    Reads ``/proc`` where there is one (so a zombie waiting for its reaper does not count as a
    process left behind); elsewhere asks the kernel whether the group still exists.
    """
    proc = Path("/proc")
    if proc.is_dir():
        members = []
        for entry in proc.iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2:].split()     # after "pid (comm) "
            if len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == pgid:
                members.append(int(entry.name))
        return members
    if IS_WINDOWS:
        return []
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return []
    return [pgid]


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


# ------------------------------------------------------------------ the job

class Job:
    """One CLI command running in the background.

    ``status`` is ``"pending"`` before :meth:`start`, then ``"running"``, and finally ``"done"``,
    ``"failed"`` or ``"cancelled"`` once :meth:`poll` (or :meth:`wait`) has seen it end.
    """

    def __init__(self, command: Sequence[str], name: str = "job", cwd: str | Path | None = None,
                 env: Mapping[str, str] | None = None, log_path: str | Path | None = None,
                 on_event: Callable[[dict[str, Any]], None] | None = None):
        self.command = [str(c) for c in command]
        self.name = name
        self.cwd = str(cwd) if cwd else None
        self.env = child_environment(env)
        self.log_path = Path(log_path) if log_path else None
        self.on_event = on_event
        self.progress = RunProgress()
        self.events: list[dict[str, Any]] = []
        self.status = "pending"
        self.returncode: int | None = None
        self.started: float | None = None
        self.ended: float | None = None
        self._process: subprocess.Popen | None = None
        self._queue: queue.Queue = queue.Queue()
        self._log: collections.deque[str] = collections.deque(maxlen=LOG_LINES)
        self._log_lock = threading.Lock()
        self._log_file = None
        self._readers: list[threading.Thread] = []
        self._cancel_requested = False
        self._kill_at = 0.0

    # -------------------------------------------------------------- lifecycle

    def start(self) -> "Job":
        if self._process is not None:
            raise RuntimeError(f"job {self.name!r} was already started")
        if self.log_path:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = open(self.log_path, "a", encoding="utf-8")
            self._write_log(f"$ {' '.join(self.command)}")
        kwargs: dict[str, Any] = {}
        if IS_WINDOWS:
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
        else:
            kwargs["start_new_session"] = True         # own session → own process group
        self._process = subprocess.Popen(
            self.command, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8",
            errors="replace", bufsize=1, **kwargs)
        self.started, self.status = time.monotonic(), "running"
        for stream, is_events in ((self._process.stdout, True), (self._process.stderr, False)):
            reader = threading.Thread(target=self._read, args=(stream, is_events),
                                      name=f"{self.name}-{'out' if is_events else 'err'}",
                                      daemon=True)
            reader.start()
            self._readers.append(reader)
        return self

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def pgid(self) -> int | None:
        """The job's process group (its own pid: it leads a new session)."""
        return self.pid if not IS_WINDOWS else None

    @property
    def running(self) -> bool:
        return self.status == "running"

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed", "cancelled")

    def _read(self, stream: Iterable[str], is_events: bool) -> None:
        for line in stream:
            line = line.rstrip("\r\n")
            if not line:
                continue
            events = list(parse_events([line])) if is_events else []
            if events:
                self._queue.put(events[0])
            else:
                self._write_log(line)

    def _write_log(self, line: str) -> None:
        with self._log_lock:
            self._log.append(line)
            if self._log_file is not None:
                self._log_file.write(line + "\n")
                self._log_file.flush()

    def poll(self) -> list[dict[str, Any]]:
        """Events that arrived since the last call; notices the end of the process. Never blocks."""
        new: list[dict[str, Any]] = []
        while True:
            try:
                new.append(self._queue.get_nowait())
            except queue.Empty:
                break
        for event in new:
            self._take(event)
        if self.status != "running" or self._process is None:
            return new
        exited = self._process.poll() is not None
        self._escalate(exited)
        if exited:
            for reader in self._readers:          # the pipes are closed: the readers end now
                reader.join(timeout=5)
            while True:
                try:
                    event = self._queue.get_nowait()
                except queue.Empty:
                    break
                new.append(event)
                self._take(event)
            self._finish(self._process.returncode)
        return new

    def _take(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        self.progress.feed(event)
        if event.get("event") == "error":
            self._write_log(f"error: {event.get('message', '')}")
            if event.get("traceback"):
                self._write_log(str(event["traceback"]).rstrip())
        if self._log_file is not None and event.get("event") in ("stage_start", "stage_end",
                                                                 "run_end", "log"):
            self._write_log(f"[{event.get('event')}] {event.get('stage', '')} "
                            f"{event.get('status', event.get('message', ''))}".rstrip())
        if self.on_event is not None:
            self.on_event(event)

    def _finish(self, returncode: int) -> None:
        self.returncode = returncode
        self.ended = time.monotonic()
        if self._cancel_requested:
            self.status = "cancelled"
        else:
            self.status = "done" if returncode == 0 else "failed"
        self._write_log(f"[{self.name}] {self.status} (exit status {returncode})")
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    @property
    def cancelling(self) -> bool:
        return self._cancel_requested and not self.finished

    def wait(self, timeout: float | None = None, interval: float = 0.1) -> str:
        """Poll until the job ends (for scripts and tests; the panel polls from a timer)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.finished:
            self.poll()
            if self.finished:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {self.name!r} still running after {timeout} s")
            time.sleep(interval)
        return self.status

    def cancel(self, grace: float = 5.0, wait: bool = True) -> None:
        """End the job and every process it started.

        First an interrupt to the whole process group (the CLI records the stage as failed, so
        ``--resume`` reruns it); whatever still runs ``grace`` seconds later is killed, and so is
        anything of the group left after the job's own process ended. With ``wait`` this returns
        when no process of the group is left; without it :meth:`poll` finishes the work (the
        panel's timer), so the GUI never blocks.
        """
        if self._process is None or self.finished or self._cancel_requested:
            if wait:
                self.wait()
            return
        self._cancel_requested = True
        self._kill_at = time.monotonic() + grace
        if IS_WINDOWS:                                      # pragma: no cover - not on CI
            try:
                self._process.send_signal(signal.CTRL_BREAK_EVENT)
            except (OSError, ValueError):
                pass
        else:
            _signal_group(self._process.pid, signal.SIGINT)
        if wait:
            self.wait(interval=0.05)

    def _escalate(self, exited: bool) -> None:
        """Kill what is left: a cancelled job after its grace time, and any process of the group
        still there once the job's own process ended (nothing may outlive a job)."""
        if self._process is None:
            return
        overdue = self._cancel_requested and time.monotonic() >= self._kill_at
        if IS_WINDOWS:                                      # pragma: no cover - not on CI
            if overdue and not exited:
                subprocess.run(["taskkill", "/F", "/T", "/PID", str(self._process.pid)],
                               capture_output=True, check=False)
            return
        if not (overdue or exited):
            return
        pgid = self._process.pid
        if group_members(pgid):
            _signal_group(pgid, signal.SIGKILL)
            deadline = time.monotonic() + 5.0
            while group_members(pgid) and time.monotonic() < deadline:
                time.sleep(0.02)            # orphans are reaped by init; wait until they are gone

    # -------------------------------------------------------------- messages

    def log_tail(self, lines: int = 30) -> str:
        with self._log_lock:
            return "\n".join(list(self._log)[-lines:])

    def error_message(self, lines: int = 30) -> str:
        """What went wrong, for a message box: the CLI's error line and the end of its log."""
        head = self.progress.error or f"{self.name} ended with exit status {self.returncode}"
        tail = self.log_tail(lines)
        return f"{head}\n\nLast lines of the log:\n{tail}" if tail else head

    def __repr__(self) -> str:
        return f"Job({self.name!r}, status={self.status!r}, pid={self.pid})"
