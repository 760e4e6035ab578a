"""The training pipeline: manifest, stages, resume after a real kill, events, bad input."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TINY_OVERRIDES
from WeakSegLib.config import apply_overrides, get_profile
from WeakSegLib.data.cohort import discover_cohort
from WeakSegLib.data.errors import InputError
from WeakSegLib.events import EventWriter, parse_events
from WeakSegLib.manifest import Manifest
from WeakSegLib.models.weights import load_model_state
from WeakSegLib.pipeline import split_cases, train, train_mixed_cohort


def tiny_profile(*extra: str):
    return apply_overrides(get_profile("fast"), [*TINY_OVERRIDES, *extra])


def test_split_is_patient_level_and_seeded() -> None:
    names = [f"c{i}" for i in range(8)]
    train_cases, val = split_cases(names, None, seed=0)
    assert len(val) == 2 and not set(val) & set(train_cases)
    assert split_cases(names, None, seed=0) == (train_cases, val)
    assert split_cases(names, ["c3"], seed=0) == ([n for n in names if n != "c3"], ["c3"])
    with pytest.raises(InputError, match="not in the cohort"):
        split_cases(names, ["zz"], seed=0)


def test_classifier_and_seeds_write_manifest_and_artefacts(tiny_phantom: Path,
                                                           tmp_path: Path) -> None:
    run = tmp_path / "run"
    manifest = train(discover_cohort(tiny_phantom), run, tiny_profile(),
                     stages=["classifier", "seeds"], show_progress=False)
    stages = manifest.data["stages"]
    assert [stages[s]["status"] for s in ("classifier", "seeds")] == ["done", "done"]
    assert "classifier/model.pt" in stages["classifier"]["artefacts"]
    assert manifest.data["channels"] == ["flair", "t1", "t1ce", "t2"]
    assert set(manifest.data["split"]["train"]) | set(manifest.data["split"]["val"]) == \
        set(discover_cohort(tiny_phantom).names)
    _, meta = load_model_state(run / "classifier" / "model.pt", "vgg16bn_classifier")
    assert meta["channels"] == ["flair", "t1", "t1ce", "t2"]
    seeds = list((run / "seeds").glob("*.npz"))
    assert seeds and (run / "seeds" / "figures" / "seeds.png").is_file()
    metrics = json.loads((run / "seeds" / "metrics.json").read_text())
    assert {"rise", "gradcampp"} <= set(metrics)
    with np.load(seeds[0]) as data:
        assert data["positive"].shape == data["negative"].shape
        assert not (data["positive"] & data["negative"]).any()
    # the same folder again without --resume: refused, nothing lost
    with pytest.raises(InputError, match="already holds a run"):
        train(discover_cohort(tiny_phantom), run, tiny_profile(), show_progress=False)
    with pytest.raises(InputError, match="other settings.*classifier.lr"):
        train(discover_cohort(tiny_phantom), run, tiny_profile("classifier.lr=0.1"),
              resume=True, show_progress=False)
    with pytest.raises(InputError, match="other settings.*data.trim_fraction"):
        train(discover_cohort(tiny_phantom), run, tiny_profile("data.trim_fraction=0.12"),
              resume=True, show_progress=False)


def test_cases_without_labels_are_refused_before_anything_is_written(no_label_case: Path,
                                                                     tmp_path: Path) -> None:
    with pytest.raises(InputError, match="without a mask or slice labels: BraTS-GLI-00001-000"):
        train(discover_cohort(no_label_case), tmp_path / "run", tiny_profile(),
              show_progress=False)
    assert not (tmp_path / "run").exists()


def test_slice_ranges_replace_masks(no_label_case: Path, tmp_path: Path) -> None:
    """A case with no mask trains from the radiologist's tumour slice range."""
    from WeakSegLib.data.labels import labels_from_ranges

    ranges = tmp_path / "ranges.csv"
    ranges.write_text("case,first_slice,last_slice\nBraTS-GLI-00001-000,60,100\n")
    labels = labels_from_ranges(ranges, {"BraTS-GLI-00001-000": 155})
    from WeakSegLib.data.slices import build_slice_set

    slices = build_slice_set(discover_cohort(no_label_case), get_profile("fast").data,
                             ["flair", "t1", "t1ce", "t2"], labels)
    assert slices.masks is None
    assert set(slices.labels[(slices.slice_index >= 60) & (slices.slice_index <= 100)]) == {1}
    assert set(slices.labels[(slices.slice_index < 60) | (slices.slice_index > 100)]) == {0}


def test_resume_without_manifest_is_refused(tiny_phantom: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="nothing to resume"):
        train(discover_cohort(tiny_phantom), tmp_path / "new", tiny_profile(), resume=True,
              show_progress=False)


def _train_command(data: Path, out: Path, *extra: str) -> list[str]:
    sets = [arg for o in TINY_OVERRIDES + ["classifier.epochs=4"] for arg in ("--set", o)]
    return [sys.executable, "-m", "WeakSegLib.cli", "train", "--data", str(data), "--out",
            str(out), "--stages", "classifier", "--quiet", "--device", "cpu", *sets, *extra]


@pytest.mark.slow
def test_resume_after_kill_gives_the_same_classifier(tiny_phantom: Path, tmp_path: Path) -> None:
    """A real subprocess killed after its first epoch; --resume ends where a clean run ends."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    clean = tmp_path / "clean"
    subprocess.run(_train_command(tiny_phantom, clean), check=True, env=env, timeout=600,
                   capture_output=True)
    killed = tmp_path / "killed"
    events = tmp_path / "events.jsonl"
    process = subprocess.Popen(_train_command(tiny_phantom, killed, "--events", str(events)),
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        done = [e for e in parse_events(events.read_text().splitlines())
                if e["event"] == "progress" and e["stage"] == "classifier"] if events.exists() else []
        if done:
            os.killpg(process.pid, signal.SIGKILL)
            break
        time.sleep(0.2)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    manifest = json.loads((killed / "manifest.json").read_text())
    assert manifest["stages"]["classifier"]["status"] == "running"
    assert (killed / "classifier" / "checkpoint.pt").is_file()
    subprocess.run(_train_command(tiny_phantom, killed, "--resume", "--events", str(events)),
                   check=True, env=env, timeout=600, capture_output=True)
    manifest = json.loads((killed / "manifest.json").read_text())
    assert manifest["stages"]["classifier"]["status"] == "done"
    log = [e["message"] for e in parse_events(events.read_text().splitlines())
           if e["event"] == "log"]
    assert any("resuming after epoch" in m for m in log)
    a, _ = load_model_state(clean / "classifier" / "model.pt", "vgg16bn_classifier")
    b, _ = load_model_state(killed / "classifier" / "model.pt", "vgg16bn_classifier")
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6, msg=name)
    history_a = json.loads((clean / "classifier" / "metrics.json").read_text())["history"]
    history_b = json.loads((killed / "classifier" / "metrics.json").read_text())["history"]
    assert [h["epoch"] for h in history_b] == [1, 2, 3, 4]
    assert [h["loss"] for h in history_a] == pytest.approx([h["loss"] for h in history_b],
                                                           rel=1e-5)


def test_cli_train_rejects_bad_override(tiny_phantom: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    from WeakSegLib.cli import EXIT_BAD_INPUT, main

    assert main(["train", "--data", str(tiny_phantom), "--out", str(tmp_path / "r"),
                 "--set", "classifier.epochz=1"]) == EXIT_BAD_INPUT
    assert "has no field 'epochz'" in capsys.readouterr().err


def test_resume_accepts_settings_newer_than_the_run_at_their_default(tmp_path: Path) -> None:
    """A run made before a setting existed behaved as its default; resuming it with the
    default is no change, with another value it is one."""
    from WeakSegLib.manifest import Manifest
    from WeakSegLib.pipeline import _check_resumable_config

    from dataclasses import asdict

    profile = get_profile("fast")
    config = json.loads(json.dumps(asdict(profile)))       # as the manifest stores it
    del config["seeds"]["rise_normalise"]
    manifest = Manifest.create(tmp_path, profile="fast", config=config, channels=["flair"],
                               data={}, split={})
    manifest.mark("seeds", "done")
    _check_resumable_config(manifest, profile, tmp_path)
    with pytest.raises(InputError, match="seeds.rise_normalise"):
        _check_resumable_config(manifest, apply_overrides(profile, ["seeds.rise_normalise=coverage"]),
                                tmp_path)


@pytest.mark.slow          # full-width networks at 128 px on the CPU: minutes on 2 cores
def test_the_paper_profile_still_runs_end_to_end_on_the_cpu(tiny_flair_t1_phantom: Path,
                                                           tmp_path: Path) -> None:
    """CPU smoke test of the GPU profile (full resolution, bf16 autocast, channels-last; widths,
    epochs and RISE masks cut here): every default stage trains one epoch and the run segments
    a case, so the profile a GPU user gets cannot rot unseen."""
    from WeakSegLib.inference.bundle import load_bundle
    from WeakSegLib.inference.volume import segment_case
    from WeakSegLib.data.reader import read_case

    # the paper profile's resolution (128 px, ×2 inside the classifier), bf16 autocast and
    # channels-last stay; widths ÷ 8 and one epoch keep it to minutes on 2 cores
    profile = apply_overrides(get_profile("paper"), [
        "data.trim_fraction=0.1", "data.inplane_spacing=2.0",   # the 2 mm phantom at its grid
        "classifier.epochs=1", "classifier.width_divisor=8", "seeds.rise_masks=8",
        "seeds.rise_batch=8", "gan.epochs=1", "gan.width_divisor=8", "converter.epochs=1",
        "segmenter.epochs=1", "selftrain.epochs=1", "refinement.max_components=1",
        "runtime.num_workers=0"])
    run = tmp_path / "paper_run"
    manifest = train(discover_cohort(tiny_flair_t1_phantom), run, profile, device="cpu",
                     show_progress=False)
    assert manifest.data["profile"] == "paper"
    assert all(e["status"] == "done" for e in manifest.data["stages"].values())
    bundle = load_bundle(run, "cpu")
    assert bundle.profile.data.size == 128 and bundle.profile.runtime.amp_bf16
    case = read_case(discover_cohort(tiny_flair_t1_phantom).cases[0])
    result = segment_case(bundle, case, ["self_trained", "combined"])
    assert result.labels["self_trained"].shape == case.geometry.shape


#: a tiny mixed-supervision network, two epochs of two steps
MIXED_TINY = ["mixed.width_divisor=16", "mixed.epochs=2", "mixed.iterations_per_epoch=2",
              "mixed.batches_per_iteration=2", "mixed.time_budget_s=none"]


class KillAfterFirstEpoch(EventWriter):
    """A client that stops the run when it sees ``stage``'s first epoch."""

    def __init__(self, stage: str) -> None:
        super().__init__()
        self.stage = stage

    def emit(self, event: str, stage: str | None = None, **fields):
        record = super().emit(event, stage, **fields)
        if event == "progress" and stage == self.stage and fields["done"] == 1:
            raise KeyboardInterrupt
        return record


@pytest.mark.parametrize("mode", ["weak", "mixed"])
def test_resume_after_interrupt_in_either_mode(mode: str, tiny_phantom: Path,
                                               tmp_path: Path) -> None:
    """Both modes are runs of one pipeline: the same manifest, refusals and resume checks,
    checkpoint, events.jsonl."""
    torch.set_num_threads(1)
    cohort, run = discover_cohort(tiny_phantom), tmp_path / mode
    stage = "classifier" if mode == "weak" else "mixed"

    def start(mode: str = mode, resume: bool = False, events=None, *extra: str):
        profile = tiny_profile(*MIXED_TINY, *extra)
        if mode == "weak":
            return train(cohort, run, profile, device="cpu", stages=["classifier"],
                         resume=resume, events=events, show_progress=False)
        return train_mixed_cohort(cohort, run, profile, full_cases=[cohort.names[0]],
                                  device="cpu", resume=resume, events=events,
                                  show_progress=False)

    with pytest.raises(KeyboardInterrupt):
        start(events=KillAfterFirstEpoch(stage))
    assert Manifest.load(run).status(stage) == "failed"
    assert (run / stage / "checkpoint.pt").is_file()
    assert not (run / stage / "metrics.json").exists()      # written when the stage ends
    with pytest.raises(InputError, match="already holds a run; pass --resume"):
        start()
    with pytest.raises(InputError, match="other settings.*data.trim_fraction"):
        start(mode, True, None, "data.trim_fraction=0.12")
    with pytest.raises(InputError, match=f"holds a --mode {mode} run"):
        start("mixed" if mode == "weak" else "weak", True)

    start(resume=True)
    manifest = Manifest.load(run)
    assert manifest.data["mode"] == mode and manifest.status(stage) == "done"
    metrics = json.loads((run / stage / "metrics.json").read_text())
    assert [h["epoch"] for h in metrics["history"]] == [1, 2]       # epoch 1 was not redone
    events = list(parse_events((run / "events.jsonl").read_text().splitlines(), strict=True))
    ends = [e["status"] for e in events if e["event"] == "run_end"]
    assert ends == ["failed", "done"]
    assert any(e["event"] == "log" and "resuming after epoch 1" in e["message"] for e in events)


def test_flair_only_training_records_its_channel(tiny_phantom: Path, tmp_path: Path) -> None:
    """`train --channels flair` on a 4-channel cohort: the bundle records FLAIR alone."""
    run = tmp_path / "run"
    manifest = train(discover_cohort(tiny_phantom), run, tiny_profile(), stages=["classifier"],
                     show_progress=False, channels=["flair"])
    assert manifest.data["channels"] == ["flair"]
    _, meta = load_model_state(run / "classifier" / "model.pt", "vgg16bn_classifier")
    assert meta["channels"] == ["flair"]
    with pytest.raises(InputError, match="channels"):
        train(discover_cohort(tiny_phantom), run, tiny_profile(), stages=["classifier"],
              resume=True, show_progress=False)


def test_channels_are_checked_before_any_work(tiny_phantom: Path, tmp_path: Path) -> None:
    from WeakSegLib.pipeline import select_channels

    cohort = discover_cohort(tiny_phantom)
    assert select_channels(cohort, None) == ["flair", "t1", "t1ce", "t2"]
    assert select_channels(cohort, ["T2", "flair"]) == ["flair", "t2"]
    with pytest.raises(InputError, match="must include flair"):
        select_channels(cohort, ["t1"])
    with pytest.raises(InputError, match="unknown modalities"):
        select_channels(cohort, ["flair", "dwi"])
    assert not (tmp_path / "run").exists()


def test_a_one_class_training_set_is_a_clear_error(tiny_phantom: Path, tmp_path: Path) -> None:
    """Trimming that leaves no tumour slice (tcga-lgg with the old 30-slice rule crashed in
    the balanced sampler) stops before any stage with a message that says why."""
    run = tmp_path / "run"
    with pytest.raises(InputError, match="leave no (tumour|healthy) slice|no slices at all"):
        train(discover_cohort(tiny_phantom), run, tiny_profile("data.trim_fraction=0.5"),
              stages=["classifier"], show_progress=False)
    assert Manifest.load(run).status("classifier") is None
