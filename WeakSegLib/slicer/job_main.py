"""Entry point of every background job: ``python -m WeakSegLib.slicer.job_main MODULE ARGS...``.

Why not just ``python -m WeakSegLib.cli``: inside Slicer the job's Python is ``PythonSlicer``, a
CTKAppLauncher that starts the real interpreter as its child and has no SIGINT handler, so an
interrupt kills the launcher at once while the real job is still cleaning up; on Windows a
CTRL_BREAK never reaches a job that has no console of its own. So cancellation does not travel as
a signal: the panel creates the file named in ``$WEAKSEG_CANCEL_FILE``, and a watcher thread
here turns it into a ``KeyboardInterrupt`` in the main thread, which the CLI handles by marking
the run cancelled (resumable). Environment variables pass through any launcher unchanged.
"""
from __future__ import annotations

import os
import runpy
import signal
import sys
import threading
import time
from pathlib import Path

#: Environment variable naming the file whose appearance asks the job to stop.
CANCEL_ENV = "WEAKSEG_CANCEL_FILE"
POLL_S = 0.1


def interrupt_main() -> None:
    """Raise KeyboardInterrupt in the main thread, waking it from a sleep or a blocking read."""
    if sys.platform == "win32":                       # pragma: no cover - not on CI
        import _thread

        _thread.interrupt_main()
    else:
        os.kill(os.getpid(), signal.SIGINT)           # a real signal interrupts time.sleep too


def watch_cancel_file(path: Path, interval: float = POLL_S) -> threading.Thread:
    """A daemon thread that interrupts the main thread once ``path`` exists."""

    def watch() -> None:
        while not path.exists():
            time.sleep(interval)
        interrupt_main()

    thread = threading.Thread(target=watch, name="weakseg-cancel-watch", daemon=True)
    thread.start()
    return thread


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        sys.exit("usage: python -m WeakSegLib.slicer.job_main MODULE [ARGS...]")
    if sys.platform != "win32":
        signal.signal(signal.SIGINT, signal.default_int_handler)   # even if the parent ignored it
    cancel_file = os.environ.get(CANCEL_ENV)
    if cancel_file:
        watch_cancel_file(Path(cancel_file))
    module, sys.argv = argv[0], argv
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
