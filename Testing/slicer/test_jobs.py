"""The job runner: real subprocesses, events read without blocking, cancel ends the whole tree."""
from __future__ import annotations

import json
import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

from WeakSegLib.slicer import commands, jobs
from WeakSegLib.slicer.progress import RunProgress

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="process groups: POSIX here")


def _event(kind: str, **fields) -> str:
    return json.dumps({"event": kind, "time": "2026-01-01T00:00:00+00:00", **fields})


def _python_job(script: str, **kwargs) -> jobs.Job:
    return jobs.Job([sys.executable, "-c", textwrap.dedent(script)], **kwargs)


# ------------------------------------------------------------------ progress

def test_progress_per_stage_from_events() -> None:
    progress = RunProgress()
    progress.feed_all([
        {"event": "stage_start", "stage": "train"},              # the command's wrapper stage
        {"event": "run_start", "run_dir": "r", "stages": ["classifier", "seeds"]},
        {"event": "progress", "stage": "preprocess", "done": 1, "total": 3, "unit": "case"},
        {"event": "stage_start", "stage": "classifier"},
        {"event": "progress", "stage": "classifier", "done": 1, "total": 4, "unit": "epoch"},
    ])
    assert list(progress.stages) == ["classifier", "seeds"]
    assert progress.fraction == pytest.approx(0.125)
    assert progress.text() == "stage 1/2 · classifier: 1/4 epoch"
    progress.feed({"event": "stage_end", "stage": "classifier", "seconds": 1.0, "status": "done"})
    progress.feed({"event": "progress", "stage": "seeds", "done": 5, "total": 10, "unit": "slice"})
    assert progress.percent == 75 and progress.text().startswith("stage 2/2 · seeds: 5/10")
    progress.feed({"event": "error", "message": "boom", "traceback": ""})
    progress.feed({"event": "run_end", "status": "failed"})
    assert progress.error == "boom" and progress.status == "failed"


def test_progress_without_a_plan_counts_every_stage() -> None:
    progress = RunProgress()
    progress.feed({"event": "stage_start", "stage": "segment"})
    progress.feed({"event": "progress", "stage": "segment", "done": 1, "total": 2, "unit": "case"})
    assert progress.percent == 50 and progress.text() == "stage 1/1 · segment: 1/2 case"


# ------------------------------------------------------------------ commands

def test_cli_command_and_environment() -> None:
    command = jobs.cli_command("segment", ["--model", "m"], python="py")
    assert command == ["py", "-m", "WeakSegLib.slicer.job_main", "WeakSegLib.cli", "segment",
                       "--model", "m", "--events", "-", "--quiet"]
    env = jobs.child_environment({"X": "1"})
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(jobs.library_root())
    assert (jobs.library_root() / "WeakSegLib" / "cli.py").is_file()
    assert env["PYTHONUNBUFFERED"] == "1" and env["X"] == "1"
    assert jobs.python_executable() == sys.executable        # no Slicer application here


def test_command_builders() -> None:
    from WeakSegLib.config import get_profile

    default = get_profile("fast").inference.default_method        # config's, not a literal
    assert commands.DEFAULT_METHOD == default
    assert commands.segment_arguments("run", "case", "out", device="cuda",
                                      mapping={"flair": "f.nii"}, overwrite=True) == [
        "--model", "run", "--input", "case", "--out", "out", "--method", default,
        "--device", "cuda", "--postprocess", "none", "--map", "flair=f.nii", "--overwrite"]
    assert commands.segment_arguments("run", "case", "out", method=None) == [   # segment picks
        "--model", "run", "--input", "case", "--out", "out", "--device", "auto",
        "--postprocess", "none"]
    assert commands.train_arguments("data", "run", resume=True, ranges="r.csv",
                                    overrides=["classifier.epochs=2"]) == [
        "--data", "data", "--out", "run", "--device", "auto", "--resume", "--ranges", "r.csv",
        "--set", "classifier.epochs=2"]
    assert commands.retrain_arguments("r.json", "cases", "new", labels="l.csv",
                                      full_cases=["A", "B"]) == [
        "--mode", "mixed", "--data", "cases", "--review", "r.json", "--full-cases", "A,B",
        "--out", "new", "--device", "auto", "--labels", "l.csv"]
    assert commands.retrain_arguments("r.json", "cases", "new", base="run")[:7] == [
        "--mode", "mixed", "--data", "cases", "--review", "r.json", "--base"]
    with pytest.raises(ValueError):
        commands.segment_arguments("run", "case", "out", device="tpu")
    with pytest.raises(ValueError):
        commands.train_arguments("d", "o", ranges="r", labels="l")


# ------------------------------------------------------------------ jobs

def test_events_logs_and_failure(tmp_path: Path) -> None:
    job = _python_job(f"""
        import sys, time
        print({_event("run_start", run_dir="r", stages=["a"])!r}, flush=True)
        print("a stray print", flush=True)
        print("warning: something", file=sys.stderr, flush=True)
        print({_event("progress", stage="a", done=1, total=2, unit="step")!r}, flush=True)
        print({_event("error", message="bad input", traceback="Traceback ...")!r}, flush=True)
        sys.exit(2)
    """, name="fails", log_path=tmp_path / "job.log")
    assert job.status == "pending"
    assert job.start().status == "running"
    assert job.wait(timeout=30) == "failed" and job.returncode == 2
    assert [e["event"] for e in job.events] == ["run_start", "progress", "error"]
    assert job.progress.stages["a"].done == 1
    message = job.error_message()
    assert message.startswith("bad input") and "warning: something" in message
    assert "a stray print" in job.log_tail()
    log = (tmp_path / "job.log").read_text()
    assert "$ " in log and "failed (exit status 2)" in log
    with pytest.raises(RuntimeError):
        job.start()


def test_poll_never_blocks() -> None:
    job = _python_job(f"""
        import time
        print({_event("log", level="info", message="hello")!r}, flush=True)
        time.sleep(2)
    """).start()
    started = time.monotonic()
    seen = []
    while not seen and time.monotonic() - started < 15:
        seen += job.poll()
        time.sleep(0.01)
    assert seen and seen[0]["message"] == "hello" and job.running
    started = time.monotonic()
    assert job.poll() == [] and time.monotonic() - started < 0.1
    assert job.wait(timeout=30) == "done"


def test_cancel_ends_the_whole_process_tree() -> None:
    """A job whose child ignores SIGINT and that has started a grandchild: all must go."""
    job = _python_job("""
        import signal, subprocess, sys, time
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        subprocess.Popen([sys.executable, "-c",
                          "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); "
                          "time.sleep(60)"])
        print('{"event": "log", "time": "t", "level": "info", "message": "ready"}', flush=True)
        time.sleep(60)
    """).start()
    while not job.events and job.running:
        job.poll()
        time.sleep(0.02)
    pgid = job.pgid
    assert len(jobs.group_members(pgid)) == 2                 # the job and its grandchild
    started = time.monotonic()
    job.cancel(grace=0.5)
    assert job.status == "cancelled" and time.monotonic() - started < 10
    assert jobs.group_members(pgid) == []
    job.cancel()                                              # a second cancel is harmless


def test_cancel_without_waiting_finishes_in_poll() -> None:
    job = _python_job("import time; time.sleep(60)").start()
    job.cancel(grace=5, wait=False)                           # what the panel's button does
    assert job.cancelling
    assert job.wait(timeout=20) == "cancelled" and jobs.group_members(job.pgid) == []


# ------------------------------------------------------------------ cancel through a launcher

LAUNCHER = """\
import signal, subprocess, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)      # like CTKAppLauncher: no SIGINT handler
sys.exit(subprocess.call([sys.executable, *sys.argv[1:]]))
"""

CLEANING_MODULE = """\
import sys, time
from pathlib import Path
out = Path(sys.argv[1])
print('{"event": "log", "time": "t", "level": "info", "message": "ready"}', flush=True)
try:
    time.sleep(60)
except KeyboardInterrupt:
    time.sleep(1.0)                     # writing the manifest takes a moment
    out.write_text("cleaned up")
    sys.exit(130)
"""


def _launcher_job(tmp_path: Path, **kwargs) -> tuple[jobs.Job, Path]:
    """A job started like PythonSlicer starts one: launcher → real Python → job_main → module."""
    (tmp_path / "launcher.py").write_text(LAUNCHER)
    (tmp_path / "cleaning_job.py").write_text(CLEANING_MODULE)
    marker = tmp_path / "cleaned.txt"
    command = [sys.executable, str(tmp_path / "launcher.py"), "-m", jobs.JOB_MAIN, "cleaning_job",
               str(marker)]
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), str(jobs.library_root())])}
    return jobs.Job(command, name="launched", env=env, log_path=tmp_path / "job.log",
                    **kwargs), marker


def test_cancel_lets_the_job_clean_up_behind_a_launcher(tmp_path: Path) -> None:
    """Issue 15 #4: the launcher dies at once; the real job still gets its grace time."""
    job, marker = _launcher_job(tmp_path, interrupt="file")
    job.start()
    while not job.events and job.running:
        job.poll()
        time.sleep(0.02)
    job.cancel(grace=20, wait=True)
    assert job.status == "cancelled"
    assert marker.read_text() == "cleaned up"
    assert jobs.group_members(job.pgid) == [] and not job.cancel_file.exists()


def test_cancel_by_signal_also_waits_for_the_real_job_behind_a_launcher(tmp_path: Path) -> None:
    """SIGINT kills a launcher without a handler at once; the job behind it must not be
    SIGKILLed with it while it cleans up."""
    job, marker = _launcher_job(tmp_path, interrupt="signal")
    job.start()
    while not job.events and job.running:
        job.poll()
        time.sleep(0.02)
    job.cancel(grace=20, wait=True)
    assert job.status == "cancelled" and marker.read_text() == "cleaned up"


def test_poll_does_not_wait_for_a_child_holding_the_pipes() -> None:
    """The job's process exits while a process it started in a session of its own still holds
    its stdout (out of reach of the group kill): poll never waits for it."""
    job = _python_job("""
        import subprocess, sys
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(2)"],
                         start_new_session=True)
    """).start()
    slowest = 0.0
    while not job.finished:
        started = time.monotonic()
        job.poll()
        slowest = max(slowest, time.monotonic() - started)
        time.sleep(0.02)
    assert slowest < 0.5 and job.status == "done"


def test_cli_jobs_run_through_job_main_and_hide_their_console() -> None:
    command = jobs.cli_command("segment", ["--model", "m"], python="py")
    assert command[:5] == ["py", "-m", "WeakSegLib.slicer.job_main", "WeakSegLib.cli", "segment"]
    assert jobs.popen_options(windows=False) == {"start_new_session": True}
    windows = jobs.popen_options(windows=True)
    assert windows["creationflags"] & jobs.CREATE_NO_WINDOW
    assert windows["creationflags"] & jobs.CREATE_NEW_PROCESS_GROUP
