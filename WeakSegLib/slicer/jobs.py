"""Background jobs: a WeakSeg CLI command in its own process group, read without blocking.

Slicer's GUI thread must never wait on training or inference, and a cancelled job must leave no
process behind (a forgotten DataLoader worker keeps a GPU busy). So a job is a subprocess
``python -m WeakSegLib.cli <command> ... --events -`` started in a new session (its own process
group); two reader threads move its stdout events and stderr log lines into a queue and a ring
buffer; the panel calls :meth:`Job.poll` from a timer, and poll never waits. Cancel asks the job
to stop (a cancel file that :mod:`.job_main` turns into KeyboardInterrupt: the CLI marks the run
cancelled and it stays resumable; or SIGINT to the group for other commands), lets the job
clean up for a grace time even when a launcher in front of it (PythonSlicer) died at once, then
kills what is left.

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


#: The module every CLI job starts through (it turns the cancel file into KeyboardInterrupt).
JOB_MAIN = "WeakSegLib.slicer.job_main"


def cli_command(command: str, arguments: Sequence[str] = (), python: str | None = None
                ) -> list[str]:
    """``[python, -m, WeakSegLib.slicer.job_main, WeakSegLib.cli, command, *arguments,
    --events, -, --quiet]``.

    ``--quiet`` because the events already carry the progress; stderr keeps warnings and errors.
    Jobs built from this command should be cancelled with ``interrupt="file"``.
    """
    return [python or python_executable(), "-m", JOB_MAIN, "WeakSegLib.cli", command,
            *[str(a) for a in arguments], "--events", "-", "--quiet"]


#: Windows process creation flags (constants of ``subprocess`` on Windows only).
CREATE_NEW_PROCESS_GROUP = 0x00000200
CREATE_NO_WINDOW = 0x08000000
STARTF_USESHOWWINDOW = 0x00000001
SW_HIDE = 0


def popen_options(windows: bool = IS_WINDOWS) -> dict[str, Any]:
    """Process-creation options of a job: its own process group, and no console window.

    POSIX: a new session (own process group, so cancel reaches grandchildren). Windows: a new
    process group without a console (CREATE_NO_WINDOW) and, like ``slicer.util``, a hidden
    window through STARTUPINFO, so no console flashes up for each job.
    """
    if not windows:
        return {"start_new_session": True}
    options: dict[str, Any] = {"creationflags": CREATE_NEW_PROCESS_GROUP | CREATE_NO_WINDOW}
    startupinfo_class = getattr(subprocess, "STARTUPINFO", None)
    if startupinfo_class is not None:                       # pragma: no cover - Windows only
        info = startupinfo_class()
        info.dwFlags |= STARTF_USESHOWWINDOW
        info.wShowWindow = SW_HIDE
        options["startupinfo"] = info
    return options


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

    #: How long the readers may outlive the job's processes before the job ends regardless.
    READER_GRACE = 5.0

    def __init__(self, command: Sequence[str], name: str = "job", cwd: str | Path | None = None,
                 env: Mapping[str, str] | None = None, log_path: str | Path | None = None,
                 on_event: Callable[[dict[str, Any]], None] | None = None,
                 interrupt: str = "signal"):
        """``interrupt``: how cancel asks the job to stop: ``"file"`` (the command runs through
        :mod:`.job_main`, see :func:`cli_command`) or ``"signal"`` (SIGINT to the group)."""
        if interrupt not in ("file", "signal"):
            raise ValueError(f"interrupt must be 'file' or 'signal', got {interrupt!r}")
        self.command = [str(c) for c in command]
        self.name = name
        self.cwd = str(cwd) if cwd else None
        self.interrupt = interrupt
        self.cancel_file: Path | None = None
        if interrupt == "file":
            import tempfile

            from .job_main import CANCEL_ENV

            folder = Path(log_path).parent if log_path else Path(tempfile.mkdtemp(prefix="weakseg-"))
            self.cancel_file = folder / f".{name}-{os.getpid()}-{id(self)}.cancel"
            env = {**(env or {}), CANCEL_ENV: str(self.cancel_file)}
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
        self._exited_at: float | None = None
        self._killed = False

    # -------------------------------------------------------------- lifecycle

    def start(self) -> "Job":
        if self._process is not None:
            raise RuntimeError(f"job {self.name!r} was already started")
        if self.log_path:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = open(self.log_path, "a", encoding="utf-8")
            self._write_log(f"$ {' '.join(self.command)}")
        if self.cancel_file is not None:
            self.cancel_file.parent.mkdir(parents=True, exist_ok=True)
            self.cancel_file.unlink(missing_ok=True)        # a stale one would cancel at once
        kwargs = popen_options()
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
        """Events that arrived since the last call; notices the end of the job. Never blocks.

        The job has ended when its own process has exited, no process of its group is left
        (a launcher may exit before the interpreter it started) and its output is read to the
        end; whatever stays past the grace times is killed here, without waiting.
        """
        new = self._drain()
        if self.status != "running" or self._process is None:
            return new
        now = time.monotonic()
        if self._exited_at is None and self._process.poll() is not None:
            self._exited_at = now
        exited = self._exited_at is not None
        self._escalate(exited)
        members = self._members() if exited else [None]
        readers_done = not any(r.is_alive() for r in self._readers)
        if exited and not members and (readers_done or now - self._exited_at > self.READER_GRACE):
            new += self._drain()
            self._finish(self._process.returncode)
        return new

    def _drain(self) -> list[dict[str, Any]]:
        new: list[dict[str, Any]] = []
        while True:
            try:
                event = self._queue.get_nowait()
            except queue.Empty:
                return new
            new.append(event)
            self._take(event)

    def _members(self) -> list[int]:
        """Live processes of the job's group (POSIX); [] on Windows, where taskkill /T ends it."""
        return group_members(self._process.pid) if not IS_WINDOWS and self._process else []

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
        if self.cancel_file is not None:
            try:
                self.cancel_file.unlink()
            except OSError:
                pass
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

        First the job is asked to stop (the cancel file, or SIGINT to the whole group): the CLI
        records the run as cancelled, so ``--resume`` reruns what is left. It gets ``grace``
        seconds to clean up, even if the launcher in front of it ended at once; whatever is
        still there then is killed. With ``wait`` this returns when no process of the group is
        left; without it :meth:`poll` finishes the work (the panel's timer), so the GUI never
        blocks.
        """
        if self._process is None or self.finished or self._cancel_requested:
            if wait:
                self.wait()
            return
        self._cancel_requested = True
        self._kill_at = time.monotonic() + grace
        if self.cancel_file is not None:
            try:
                self.cancel_file.write_text("cancel\n", encoding="utf-8")
            except OSError:
                self._kill_at = time.monotonic()           # cannot ask: kill at once
        elif IS_WINDOWS:                                    # pragma: no cover - not on CI
            try:
                self._process.send_signal(signal.CTRL_BREAK_EVENT)
            except (OSError, ValueError):
                pass
        else:
            _signal_group(self._process.pid, signal.SIGINT)
        if wait:
            self.wait(interval=0.05)

    def _escalate(self, exited: bool) -> None:
        """Kill what is left, without waiting: a cancelled job after its grace time, and any
        process of the group still there once a job that was not cancelled has exited (nothing
        may outlive a job). A cancelled job whose launcher exited keeps its grace time."""
        if self._process is None:
            return
        overdue = self._cancel_requested and time.monotonic() >= self._kill_at
        if IS_WINDOWS:                                      # pragma: no cover - not on CI
            if overdue and not exited and not self._killed:
                self._killed = True
                subprocess.run(["taskkill", "/F", "/T", "/PID", str(self._process.pid)],
                               capture_output=True, check=False,
                               creationflags=CREATE_NO_WINDOW)
            return
        if not (overdue or (exited and not self._cancel_requested)):
            return
        if self._members():
            _signal_group(self._process.pid, signal.SIGKILL)
            self._killed = True

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
