"""Issue 17: how long a user waits, beside a peer — WeakSeg's `segment` against nnU-Net v2's
2D predictor, on the same real 240 × 240 × 155 BraTS volume (4 channels), machine and threads.

    python benchmarks/speed.py --out benchmarks/results/speed.json [--memory-curve 50]
                               [--threads 2] [--device cpu|cuda] [--model default]

* WeakSeg: the default `segment` path end to end — read → preprocess → networks →
  post-processing → label map, .seg.nrrd and slice table written — with ``--model default``
  and its default method, the bundle loaded once (as `segment` does for a cohort); the median
  of ``--repeats`` runs, plus one cold `weakseg segment` process (Python start, imports, bundle).
* nnU-Net v2 (``pip install -r benchmarks/requirements-speed.txt``, see there): its own
  fingerprint extractor and ExperimentPlanner make the 2D plan from ``--plan-cases`` BraTS
  cases converted to its raw format (nnU-Net's own BraTS label conversion, regions as in its
  Dataset137_BraTS21) in a temporary folder; the network gets random weights (speed does not
  depend on them); ``predict_from_files_sequential`` — its reader, cropping, normalisation,
  default sliding window (step 0.5, Gaussian), export — runs on the same volume without and
  with mirroring (``use_mirroring``).
* Each side runs in its own process with ``--threads`` torch/OpenMP threads, so its peak RSS
  (``ru_maxrss``) is its own. The load average is recorded at start and end: the machine may
  be shared.
* ``--memory-curve N``: one `segment` run over N cases (the 20 multimodal cases cycled through
  a temporary folder of symlinks), RSS after each case; ``memory_curve.png`` beside the json.
* Training: seconds per stage and slices per second of the 20-patient cohort's folds, read
  from their run folders (``--training-runs``, default ``../cv/run1/fold*/run``) — nothing is
  retrained here.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "brats2018-multimodal"
RESULTS = REPO / "benchmarks" / "results"
#: held out of the shipped default model (its model card's held_out_cases)
DEFAULT_CASE = "Brats18_CBICA_APY_1"
#: nnU-Net's channel order in its own BraTS conversion (Dataset137_BraTS21)
NNUNET_CHANNELS = ("t1", "t1ce", "t2", "flair")
NNUNET_DATASET = (917, "Dataset917_BraTSSpeed")
INSTALL_HINT = ("nnU-Net v2 is not installed; install it beside WeakSeg (not a WeakSeg "
                "dependency) as benchmarks/requirements-speed.txt says, keeping the CPU torch")


# ----------------------------------------------------------------------------- parent side

def run_measured(cmd: list[str], env: dict[str, str], timeout: float) -> dict:
    """Run ``cmd``; its wall time, exit code, peak RSS (its own and its waited children's,
    from ``wait4``) and the JSON its last stdout line holds (the workers print one)."""
    with tempfile.TemporaryFile("w+") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        out.seek(0)
        text = out.read()
    lines = [line for line in text.splitlines() if line.startswith("{")]
    report = json.loads(lines[-1]) if lines and proc.returncode == 0 else {}
    return {"rc": proc.returncode, "wall_seconds": round(wall, 2),
            "peak_rss_gb": round(usage.ru_maxrss / 1e6, 3), "report": report,
            "tail": "" if proc.returncode == 0 else text[-2000:]}


def worker_env(threads: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return {**env, **(extra or {})}


def worker(name: str, args: argparse.Namespace, timeout: float, **extra: str) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name,
           "--threads", str(args.threads), "--device", args.device, "--model", args.model,
           "--case", args.case, "--repeats", str(args.repeats),
           "--plan-cases", str(args.plan_cases), "--memory-curve", str(args.memory_curve),
           "--tmp", str(args.tmp)]
    return run_measured(cmd, worker_env(args.threads, extra), timeout)


def nnunet_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("nnunetv2") is not None


def training_stages(pattern: str) -> dict:
    """Seconds per stage and slices per second from finished run folders (manifest.json's
    stage seconds, each stage's metrics.json for how many slices and epochs it went through)."""
    runs = sorted(glob.glob(pattern))
    if not runs:
        return {"note": f"no run folders match {pattern}; nothing measured"}
    per_stage: dict[str, dict[str, list[float]]] = {}
    for run in runs:
        manifest = json.loads(Path(run, "manifest.json").read_text())
        for stage, record in manifest.get("stages", {}).items():
            seconds = record.get("seconds")
            if not seconds:
                continue
            entry = per_stage.setdefault(stage, {"seconds": [], "slices_per_second": []})
            entry["seconds"].append(float(seconds))
            metrics_path = Path(run, stage, "metrics.json")
            if metrics_path.is_file():
                metrics = json.loads(metrics_path.read_text())
                slices = _slices_seen(stage, metrics)
                if slices:
                    entry["slices_per_second"].append(slices / float(seconds))
    summary = {}
    for stage, entry in per_stage.items():
        summary[stage] = {"seconds_mean": round(statistics.mean(entry["seconds"]), 1),
                          "seconds_per_fold": [round(s, 1) for s in entry["seconds"]]}
        if entry["slices_per_second"]:
            summary[stage]["slices_per_second_mean"] = round(
                statistics.mean(entry["slices_per_second"]), 1)
    total = sum(v["seconds_mean"] for v in summary.values())
    return {"runs": runs, "stages": summary, "total_seconds_mean": round(total, 1),
            "slices": "slices a stage went through: training slices × epochs (classifier, "
                      "segmenters, converter, DCGAN on its healthy slices), tumour slices "
                      "explained (seeds), tumour slices refined (refinement)"}


def _slices_seen(stage: str, metrics: dict) -> float | None:
    epochs = len(metrics.get("history", []))
    if stage == "seeds":
        return metrics.get("n_tumour_slices")
    if stage == "refinement":
        return metrics.get("n_tumour_slices")
    if stage == "dcgan":
        return (metrics.get("n_healthy") or 0) * epochs or None
    n = metrics.get("n_train_slices")
    if n is None and stage == "classifier":
        return None
    return n * epochs if n and epochs else None


def memory_figure(curve: dict, path: Path) -> Path:
    """RSS after each case of the batch, with the ±10 % band around case 5."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rss, peak = curve["rss_gb"], curve["peak_rss_gb"]
    cases = list(range(1, len(rss) + 1))
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=120)
    ax.plot(cases, rss, "o-", ms=3, label="RSS after the case")
    ax.plot(cases, peak, "-", color="tab:red", label="peak RSS so far")
    if len(peak) >= 5:
        ref = peak[4]
        ax.axhspan(ref * 0.9, ref * 1.1, color="tab:red", alpha=0.1,
                   label="peak after case 5 ± 10 %")
    ax.set_xlabel("case of the batch (20 BraTS cases cycled)")
    ax.set_ylabel("GB")
    ax.set_ylim(0, max(peak) * 1.3)
    ax.set_title(f"`weakseg segment` on {len(rss)} volumes: memory "
                 f"({curve['threads']} threads)", fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def main_parent(args: argparse.Namespace) -> int:
    import torch

    case_dir = DATA / args.case
    if not case_dir.is_dir():
        print(f"{case_dir}: no such case folder (the BraTS multimodal cases lie in {DATA})",
              file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    result: dict = {"issue": 17, "case": args.case, "model": args.model,
                    "device": args.device, "threads": args.threads,
                    "machine": describe_machine(),
                    "loadavg_start": [round(x, 2) for x in os.getloadavg()],
                    "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="weakseg_speed_") as tmp:
        args.tmp = Path(tmp)
        print("WeakSeg: segment, bundle loaded once ...", flush=True)
        weak = worker("weakseg", args, timeout=900)
        if weak["rc"] != 0:
            print(weak["tail"], file=sys.stderr)
            return 1
        result["weakseg"] = {**weak["report"], "process_peak_rss_gb": weak["peak_rss_gb"]}
        result["weakseg_seconds_per_volume"] = weak["report"]["seconds_median"]
        result["peak_rss_gb"] = weak["peak_rss_gb"]
        print(f"  {result['weakseg_seconds_per_volume']:.2f} s per volume, peak RSS "
              f"{weak['peak_rss_gb']:.2f} GB", flush=True)
        print("WeakSeg: one cold `weakseg segment` process ...", flush=True)
        cli = run_measured([sys.executable, "-m", "WeakSegLib.cli", "segment", "--model",
                            args.model, "--input", str(case_dir), "--out",
                            str(args.tmp / "cli"), "--device", args.device, "--quiet"],
                           worker_env(args.threads), timeout=600)
        result["weakseg_cli"] = {k: cli[k] for k in ("rc", "wall_seconds", "peak_rss_gb")}
        result["peak_rss_gb"] = max(result["peak_rss_gb"], cli["peak_rss_gb"])
        if args.skip_nnunet:
            result["nnunet_2d"] = {"note": "skipped (--skip-nnunet)"}
        elif not nnunet_available():
            print(INSTALL_HINT, file=sys.stderr)
            result["nnunet_2d"] = {"note": INSTALL_HINT}
        else:
            nn_env = {f"nnUNet_{k}": str(args.tmp / "nnunet" / k)
                      for k in ("raw", "preprocessed", "results")}
            print(f"nnU-Net: 2D plan from {args.plan_cases} cases ...", flush=True)
            plan = worker("nnunet-plan", args, timeout=900, **nn_env)
            if plan["rc"] != 0:
                print(plan["tail"], file=sys.stderr)
                return 1
            result["nnunet_2d"] = {"plan": plan["report"], "planning_seconds":
                                   plan["wall_seconds"]}
            for mirror in (False, True):
                label = "mirrored" if mirror else "plain"
                print(f"nnU-Net: 2D predictor, use_mirroring={mirror} ...", flush=True)
                run = worker("nnunet-predict-mirror" if mirror else "nnunet-predict", args,
                             timeout=900, **nn_env)
                if run["rc"] != 0:
                    print(run["tail"], file=sys.stderr)
                    return 1
                result["nnunet_2d"][label] = {**run["report"],
                                              "process_peak_rss_gb": run["peak_rss_gb"]}
                print(f"  {run['report']['seconds']:.1f} s per volume", flush=True)
            plain = result["nnunet_2d"]["plain"]["seconds"]
            mirrored = result["nnunet_2d"]["mirrored"]["seconds"]
            result["nnunet_2d_seconds_per_volume"] = plain
            result["nnunet_2d_mirrored_seconds_per_volume"] = mirrored
            result["ratio_to_nnunet_2d"] = round(result["weakseg_seconds_per_volume"] / plain, 4)
            result["ratio_to_nnunet_2d_mirrored"] = round(
                result["weakseg_seconds_per_volume"] / mirrored, 4)
            result["nnunet_2d_peak_rss_gb"] = result["nnunet_2d"]["plain"]["process_peak_rss_gb"]
        if args.memory_curve:
            print(f"WeakSeg: memory over a {args.memory_curve}-volume batch ...", flush=True)
            curve = worker("memory", args, timeout=args.memory_timeout)
            partial = args.tmp / "memory_partial.json"
            if curve["rc"] != 0 and not partial.is_file():
                print(curve["tail"], file=sys.stderr)
                return 1
            report = curve["report"] or json.loads(partial.read_text())
            report["process_peak_rss_gb"] = curve["peak_rss_gb"]
            peak = report["peak_rss_gb"]
            report["peak_growth_case5_to_last"] = round(peak[-1] / peak[4] - 1, 4) \
                if len(peak) >= 5 else None
            report["figure"] = str(memory_figure(report, out.with_name("memory_curve.png")))
            result["memory_curve"] = report
    result["training"] = training_stages(args.training_runs)
    result["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    result["benchmark_seconds"] = round(time.perf_counter() - started, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if not isinstance(v, dict)}, indent=1))
    print(f"written to {out}")
    return 0


# ----------------------------------------------------------------------------- worker side

def _weakseg_worker(args: argparse.Namespace) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    from WeakSegLib.data.cohort import discover_cohort
    from WeakSegLib.inference.bundle import default_method, load_bundle
    from WeakSegLib.inference.segment import segment_cohort
    from WeakSegLib.inference.volume import networks_for

    started = time.perf_counter()
    bundle = load_bundle(args.model, args.device)
    load_seconds = time.perf_counter() - started
    methods = [default_method(bundle)]
    cohort = discover_cohort(DATA / args.case)
    seconds, results = [], []
    for r in range(args.repeats):
        t = time.perf_counter()
        results = segment_cohort(bundle, cohort, args.tmp / f"weakseg_{r}", methods,
                                 show_progress=False)
        seconds.append(time.perf_counter() - t)
    report = {"seconds": [round(s, 3) for s in seconds],
              "seconds_median": round(statistics.median(seconds), 3),
              "bundle_load_seconds": round(load_seconds, 3), "methods": methods,
              "networks": ["classifier", "converter",
                           *sorted(networks_for(bundle, methods))],
              "patches": results[-1].extra.get("n_patches"),
              "postprocess": bundle.profile.inference.postprocess,
              "measures": "read → preprocess → networks → post-processing → outputs written"}
    if bundle.device.type == "cuda":
        report["cuda_max_allocated_gb"] = round(torch.cuda.max_memory_allocated() / 1e9, 3)
    return report


def _nnunet_plan_worker(args: argparse.Namespace) -> dict:
    from nnunetv2.dataset_conversion.Dataset137_BraTS21 import (
        copy_BraTS_segmentation_and_convert_labels_to_nnUNet)
    from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json
    from nnunetv2.experiment_planning.plan_and_preprocess_api import (
        extract_fingerprints, plan_experiments)

    for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        Path(os.environ[key]).mkdir(parents=True, exist_ok=True)
    base = Path(os.environ["nnUNet_raw"]) / NNUNET_DATASET[1]
    (base / "imagesTr").mkdir(parents=True, exist_ok=True)
    (base / "labelsTr").mkdir(exist_ok=True)
    cases = [c for c in sorted(p.name for p in DATA.iterdir()) if c != args.case]
    cases = cases[:args.plan_cases]
    for case in cases:
        for i, modality in enumerate(NNUNET_CHANNELS):
            (base / "imagesTr" / f"{case}_{i:04d}.nii.gz").symlink_to(
                DATA / case / f"{case}_{modality}.nii.gz")
        copy_BraTS_segmentation_and_convert_labels_to_nnUNet(
            str(DATA / case / f"{case}_seg.nii.gz"), str(base / "labelsTr" / f"{case}.nii.gz"))
    generate_dataset_json(str(base), channel_names={0: "T1", 1: "T1ce", 2: "T2", 3: "Flair"},
                          labels={"background": 0, "whole tumor": (1, 2, 3),
                                  "tumor core": (2, 3), "enhancing tumor": (3,)},
                          num_training_cases=len(cases), file_ending=".nii.gz",
                          regions_class_order=(1, 2, 3))
    extract_fingerprints([NNUNET_DATASET[0]], num_processes=args.threads, verbose=False,
                         show_progress_bar=False)
    plan_experiments([NNUNET_DATASET[0]])
    plans = json.loads((Path(os.environ["nnUNet_preprocessed"]) / NNUNET_DATASET[1]
                        / "nnUNetPlans.json").read_text())
    config = plans["configurations"]["2d"]
    arch = config["architecture"]["arch_kwargs"]
    return {"planned_from": cases, "planner": "ExperimentPlanner (nnUNetPlans)",
            "patch_size": config["patch_size"], "batch_size": config["batch_size"],
            "features_per_stage": arch["features_per_stage"], "n_stages": arch["n_stages"],
            "median_image_size": config["median_image_size_in_voxels"],
            "normalization": config["normalization_schemes"]}


def _nnunet_predict_worker(args: argparse.Namespace, mirror: bool) -> dict:
    import torch
    from batchgenerators.utilities.file_and_folder_operations import load_json
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    torch.set_num_threads(args.threads)
    folder = Path(os.environ["nnUNet_preprocessed"]) / NNUNET_DATASET[1]
    plans = PlansManager(load_json(str(folder / "nnUNetPlans.json")))
    dataset = load_json(str(folder / "dataset.json"))
    config = plans.get_configuration("2d")
    labels = plans.get_label_manager(dataset)
    torch.manual_seed(0)                  # random weights: the time does not depend on them
    network = get_network_from_plans(
        config.network_arch_class_name, config.network_arch_init_kwargs,
        config.network_arch_init_kwargs_req_import,
        determine_num_input_channels(plans, config, dataset), labels.num_segmentation_heads,
        allow_init=True, deep_supervision=False)
    device = torch.device(args.device if args.device != "auto" else "cpu")
    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=mirror,
                                perform_everything_on_device=device.type == "cuda",
                                device=device, verbose=False, allow_tqdm=False)
    predictor.manual_initialization(network.to(device), plans, config,
                                    [network.state_dict()], dataset, "nnUNetTrainer", (0, 1))
    case_dir = DATA / args.case
    files = [[str(case_dir / f"{args.case}_{m}.nii.gz") for m in NNUNET_CHANNELS]]
    out = args.tmp / ("nnunet_pred_mirror" if mirror else "nnunet_pred")
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    predictor.predict_from_files_sequential(files, [str(out / args.case)], overwrite=True)
    seconds = time.perf_counter() - started
    report = {"seconds": round(seconds, 3), "use_mirroring": mirror,
              "mirror_axes": [0, 1] if mirror else [], "tile_step_size": 0.5,
              "parameters": sum(p.numel() for p in network.parameters()),
              "measures": "predict_from_files_sequential: read → crop/normalise → sliding "
                          "window → export (nnU-Net's own end to end)"}
    if device.type == "cuda":
        report["cuda_max_allocated_gb"] = round(torch.cuda.max_memory_allocated() / 1e9, 3)
    return report


def _rss_gb() -> tuple[float, float]:
    """(current RSS, peak RSS so far) of this process, GB, from /proc/self/status."""
    values = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            key, amount = line.split(":", 1)
            values[key] = int(amount.split()[0]) / 1e6
    return values["VmRSS"], values["VmHWM"]


def _memory_worker(args: argparse.Namespace) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    from WeakSegLib.data.cohort import discover_cohort
    from WeakSegLib.events import EventWriter
    from WeakSegLib.inference.bundle import default_method, load_bundle
    from WeakSegLib.inference.segment import segment_cohort

    folder = args.tmp / "memory_cases"
    folder.mkdir(parents=True)
    sources = sorted(p for p in DATA.iterdir() if p.is_dir())
    for i in range(args.memory_curve):
        (folder / f"case_{i:03d}").symlink_to(sources[i % len(sources)])
    rss, peak, seconds = [], [], []
    report = {"cases": args.memory_curve, "threads": args.threads, "rss_gb": rss,
              "peak_rss_gb": peak, "segment_seconds": seconds,
              "sources": [p.name for p in sources]}
    partial = args.tmp / "memory_partial.json"      # what a timed-out run still tells

    class Recorder(EventWriter):
        def metric(self, stage: str, name: str, value: float) -> None:
            if stage == "segment" and name.endswith("/seconds"):
                now, high = _rss_gb()
                rss.append(round(now, 4))
                peak.append(round(high, 4))
                seconds.append(round(value, 3))
                partial.write_text(json.dumps({**report, "complete": False}))

    bundle = load_bundle(args.model, args.device)
    segment_cohort(bundle, discover_cohort(folder), args.tmp / "memory_out",
                   [default_method(bundle)], events=Recorder(), show_progress=False)
    return {**report, "complete": True}


def main_worker(args: argparse.Namespace) -> int:
    if args.worker == "weakseg":
        report = _weakseg_worker(args)
    elif args.worker == "nnunet-plan":
        report = _nnunet_plan_worker(args)
    elif args.worker in ("nnunet-predict", "nnunet-predict-mirror"):
        report = _nnunet_predict_worker(args, args.worker.endswith("mirror"))
    elif args.worker == "memory":
        report = _memory_worker(args)
    else:
        raise SystemExit(f"unknown worker {args.worker}")
    print(json.dumps(report))
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(RESULTS / "speed.json"))
    p.add_argument("--case", default=DEFAULT_CASE, help="a case folder of brats2018-multimodal")
    p.add_argument("--model", default="default", help="bundle `segment --model` takes")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    p.add_argument("--repeats", type=int, default=3, help="WeakSeg runs per volume (median)")
    p.add_argument("--plan-cases", type=int, default=3,
                   help="BraTS cases nnU-Net's planner sees (its fingerprint)")
    p.add_argument("--skip-nnunet", action="store_true")
    p.add_argument("--memory-curve", type=int, default=0, metavar="N",
                   help="also segment N volumes in one batch and record RSS per case")
    p.add_argument("--memory-timeout", type=float, default=1800,
                   help="seconds the batch may take; a stopped one reports the cases done")
    p.add_argument("--training-runs", default=str(REPO.parent / "cv" / "run1" / "fold*" / "run"),
                   help="glob of finished run folders whose stage times are reported")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--tmp", type=Path, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return main_worker(args) if args.worker else main_parent(args)


if __name__ == "__main__":
    sys.exit(main())
