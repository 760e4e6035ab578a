"""The panel's state machine: what is enabled when, and what each click does. No Qt.

The widget in ``WeakSeg/WeakSeg.py`` only forwards clicks here and copies :meth:`enabled`,
texts and progress back onto its widgets; everything the panel decides lives in this class, so
it is tested headless against a real MRML scene. Settings are kept in the module's parameter
node (:mod:`.parameters`), so they are saved with the scene; the job, the review session and the
volumes marked for training live here for the session.

The user is reached through a small ``View`` (ask yes/no, show an error or a message, show the
result, open the Segment Editor); :class:`HeadlessView` is the one used without a GUI.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from ..config import MODALITIES
from . import bundle, commands, defaults, logic, nodes
from .jobs import Job, cli_command
from .parameters import WeakSegParameters, get_parameter_node, read_parameters, write_parameters
from .review import (ACCEPTED, BY_PRIORITY, CORRECTED, LEGACY_NOTE, PENDING, REJECTED, ReviewRow,
                     ReviewSession, flag_basis)

SELECTORS: dict[str, str] = {"flair": "flairSelector", "t1": "t1Selector",
                             "t1ce": "t1ceSelector", "t2": "t2Selector"}

#: objectName of every widget the controller rules over (the .ui file must have them all).
WIDGETS: tuple[str, ...] = (
    # Inputs
    *SELECTORS.values(), "referenceSelector", "autoMapButton",
    # Model
    "modelPathLineEdit", "deviceComboBox", "environmentLabel", "installButton",
    "modelStatusLabel",
    # Segment
    "postprocessCheckBox", "postprocessOpsLineEdit", "applyButton", "segmentProgressBar",
    "segmentStatusLabel",
    # Review
    "reviewTableView", "thresholdSliderWidget", "nextFlaggedButton", "acceptButton",
    "correctButton", "rejectButton", "reviewCountsLabel",
    # Train
    "trainCohortRadioButton", "trainVolumesRadioButton", "cohortPathLineEdit",
    "firstSliceButton", "lastSliceButton", "clearRangesButton", "rangesLabel",
    "trainRunPathLineEdit", "trainButton", "trainCancelButton", "resumeButton",
    "retrainButton", "trainProgressBar", "trainStatusLabel",
    # Export
    "exportPathLineEdit", "reviewerLineEdit", "exportSegmentationButton",
    "exportLabelmapButton", "exportCsvButton", "exportJsonButton",
)
#: Widgets whose enabled state :meth:`PanelController.enabled` decides (labels and bars aside).
BUTTONS: tuple[str, ...] = tuple(w for w in WIDGETS if not w.endswith(("Label", "ProgressBar")))

TRAIN_KINDS = ("train", "resume", "retrain")


class View(Protocol):
    """How the controller reaches the user; the Slicer widget implements it with dialogs."""

    def ask(self, question: str) -> bool: ...
    def error(self, message: str) -> None: ...
    def info(self, message: str) -> None: ...
    def show_result(self, segmentation: Any, reference: Any) -> None: ...
    def open_segment_editor(self, segmentation: Any, reference: Any) -> None: ...


@dataclass
class HeadlessView:
    """A view without a GUI: answers every question with ``answer`` and keeps what was said."""

    answer: bool = True
    questions: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    shown: list[Any] = field(default_factory=list)
    edited: list[Any] = field(default_factory=list)

    def ask(self, question: str) -> bool:
        self.questions.append(question)
        return self.answer

    def error(self, message: str) -> None:
        self.errors.append(message)

    def info(self, message: str) -> None:
        self.messages.append(message)

    def show_result(self, segmentation: Any, reference: Any) -> None:
        self.shown.append(segmentation)

    def open_segment_editor(self, segmentation: Any, reference: Any) -> None:
        self.edited.append(segmentation)


@dataclass
class SegmentRun:
    """What a segment job needs once it ends: where its files are."""

    case: str
    reference: Any
    inputs: dict[str, Path]
    out_dir: Path
    method: str
    postprocess_ops: str | None
    grid: Any = None        # the FLAIR's world grid, where segment writes the result


def _stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


class PanelController:
    """State and actions of the WeakSeg panel, on one scene."""

    def __init__(self, scene: Any, view: View | None = None, work_root: str | Path | None = None,
                 python: str | None = None, cancel_grace: float = 15.0,
                 train_overrides: tuple[str, ...] = (), train_extra: tuple[str, ...] = ()):
        import tempfile

        self.scene = scene
        self.view: View = view or HeadlessView()
        self.work_root = Path(work_root) if work_root else Path(tempfile.gettempdir()) / "WeakSeg"
        self.python = python
        self.cancel_grace = cancel_grace
        self.train_overrides = tuple(train_overrides)      # --set assignments for train jobs
        self.train_extra = tuple(train_extra)              # more train arguments (--stages ...)
        self.parameter_node = get_parameter_node(scene)
        self.job: Job | None = None
        self.job_kind: str | None = None
        self.review: ReviewSession | None = None
        self.selected_row: int | None = None
        self.training_cases: dict[str, logic.TrainingCase] = {}
        self.last_result: logic.SegmentResult | None = None
        self.failed_runs: set[str] = set()          # run folders whose last job did not finish
        self._segment_run: SegmentRun | None = None
        self._retrain_out: Path | None = None
        self._handled: Job | None = None
        self.listeners: list[Callable[[], None]] = []

    # -------------------------------------------------------------- parameters

    @property
    def params(self) -> WeakSegParameters:
        parameters = read_parameters(self.parameter_node)
        parameters.model_dir = defaults.relocate_default_model(parameters.model_dir)
        return parameters

    def update(self, **changes: Any) -> WeakSegParameters:
        """Change settings (a widget was edited); stored in the parameter node at once."""
        parameters = self.params
        for key, value in changes.items():
            if not hasattr(parameters, key):
                raise AttributeError(f"no panel setting {key!r}")
            if key in ("model_dir", "cohort_dir", "run_dir", "export_dir", "result_dir"):
                value = Path(value) if value not in (None, "") else None
            setattr(parameters, key, value)
        parameters.__post_init__()
        write_parameters(self.parameter_node, parameters)
        self._changed()
        return parameters

    def _changed(self) -> None:
        for listener in list(self.listeners):
            listener()

    # -------------------------------------------------------------- state

    @property
    def busy(self) -> bool:
        return self.job is not None and not self.job.finished

    @property
    def segmenting(self) -> bool:
        return self.busy and self.job_kind == "segment"

    @property
    def training(self) -> bool:
        return self.busy and self.job_kind in TRAIN_KINDS

    def reference(self, parameters: WeakSegParameters | None = None) -> Any:
        """The reference volume: the chosen one, else the FLAIR volume."""
        parameters = parameters or self.params
        return parameters.reference or parameters.flair

    def segment_problem(self, parameters: WeakSegParameters | None = None) -> str | None:
        """Why Apply cannot run now (a sentence for the panel), or None."""
        p = parameters or self.params
        if p.flair is None:
            return "select a FLAIR volume"
        problem = bundle.bundle_problem(p.model_dir)
        if problem:
            return problem
        missing = [m for m in bundle.bundle_channels(p.model_dir) if m not in p.inputs]
        if missing:
            return f"the model needs {', '.join(missing)}: select a volume for each"
        return logic.geometry_problem(p.inputs, self.reference(p))

    def train_problem(self, parameters: WeakSegParameters | None = None) -> str | None:
        """Why Train cannot start now, or None."""
        p = parameters or self.params
        if p.train_source == "cohort":
            if p.cohort_dir is None or not Path(p.cohort_dir).is_dir():
                return "choose a cohort folder"
        elif not any(c.complete for c in self.training_cases.values()):
            return "mark the first and last tumour slice of at least one loaded case"
        if p.run_dir is not None and Path(p.run_dir).exists() and any(Path(p.run_dir).iterdir()):
            return f"{p.run_dir} is not empty: Resume it or choose a new run folder"
        return None

    def resumable(self, parameters: WeakSegParameters | None = None) -> bool:
        """A run folder training left unfinished, with its training data still at hand."""
        p = parameters or self.params
        if p.run_dir is None:
            return False
        unfinished = bundle.run_resumable(p.run_dir) or (
            str(p.run_dir) in self.failed_runs and bundle.read_manifest(p.run_dir) is not None)
        return unfinished and self._training_data(p) is not None

    def enabled(self) -> dict[str, bool]:
        """Every rule of the panel: widget objectName → enabled."""
        p = self.params
        busy, segmenting, training = self.busy, self.segmenting, self.training
        free = not busy
        rows = self.review is not None and bool(self.review.rows)
        selected = rows and self.selected_row is not None and not segmenting
        has_segmentation = p.segmentation is not None and self.reference(p) is not None
        volumes = p.train_source == "volumes"
        export = p.export_dir is not None
        state = {name: free for name in (*SELECTORS.values(), "referenceSelector",
                                         "autoMapButton", "modelPathLineEdit", "deviceComboBox",
                                         "installButton", "postprocessCheckBox",
                                         "trainCohortRadioButton", "trainVolumesRadioButton",
                                         "trainRunPathLineEdit")}
        state.update({
            "postprocessOpsLineEdit": free and p.postprocess,
            "applyButton": segmenting or (free and self.segment_problem(p) is None),
            "reviewTableView": rows,
            "thresholdSliderWidget": rows,
            "nextFlaggedButton": rows and not segmenting
            and self.review.next_flagged() is not None,
            "acceptButton": selected,
            "rejectButton": selected,
            "correctButton": selected and has_segmentation,
            "cohortPathLineEdit": free and not volumes,
            "firstSliceButton": free and volumes and self.reference(p) is not None,
            "lastSliceButton": free and volumes and self.reference(p) is not None,
            "clearRangesButton": free and volumes and bool(self.training_cases),
            "trainButton": free and self.train_problem(p) is None,
            "trainCancelButton": training,
            "resumeButton": free and self.resumable(p),
            "retrainButton": free and self.review is not None and self.review.has_annotations
            and has_segmentation and bundle.bundle_problem(p.model_dir) is None,
            "exportPathLineEdit": True,
            "reviewerLineEdit": True,
            "exportSegmentationButton": export and has_segmentation,
            "exportLabelmapButton": export and has_segmentation,
            "exportCsvButton": export and rows,
            "exportJsonButton": export and rows and has_segmentation,
        })
        return state

    def apply_text(self) -> str:
        return "Cancel" if self.segmenting else "Apply"

    def status_texts(self) -> dict[str, str]:
        """Texts of the panel's labels."""
        p = self.params
        # the bundle's folder name too: a long path shows only its end in the path field
        texts = {"modelStatusLabel": self.model_text(p),
                 "reviewCountsLabel": self.review.counts_text() if self.review else "no result yet",
                 "rangesLabel": "; ".join(f"{c.name}: {self._range_text(c)}"
                                          for c in self.training_cases.values()) or "none marked"}
        for kind, label in (("segment", "segmentStatusLabel"), ("train", "trainStatusLabel")):
            texts[label] = self._job_text(kind)
        if texts["segmentStatusLabel"] == "" and not self.busy:
            texts["segmentStatusLabel"] = self.segment_problem(p) or "ready"
        return texts

    @staticmethod
    def model_text(p: WeakSegParameters) -> str:
        """The model status line: what is missing, or which bundle segments (the shipped
        default named as such, since its path is deep inside the extension)."""
        problem = bundle.bundle_problem(p.model_dir)
        if problem:
            return problem
        channels = ", ".join(bundle.bundle_channels(p.model_dir))
        if defaults.is_default_model(p.model_dir):
            return (f"ready: default model ({defaults.default_model_summary(p.model_dir)}; "
                    f"{channels})")
        return f"ready: {Path(p.model_dir).name} ({channels})"

    @staticmethod
    def _range_text(case: logic.TrainingCase) -> str:
        first = "?" if case.first is None else str(case.first)
        last = "?" if case.last is None else str(case.last)
        return f"{first}–{last}"

    def _job_text(self, kind: str) -> str:
        if self.job is None or (self.job_kind == "segment") != (kind == "segment"):
            return ""
        if self.job.cancelling:
            return "cancelling…"
        if self.job.finished:
            return f"{self.job.name}: {self.job.status}"
        return self.job.progress.text() or f"{self.job.name}: starting…"

    def progress(self, kind: str) -> int:
        """Percent for the segment or train progress bar."""
        if self.job is None or (self.job_kind == "segment") != (kind == "segment"):
            return 0
        return 100 if self.job.status == "done" else self.job.progress.percent

    # -------------------------------------------------------------- scene

    def scene_closing(self) -> None:
        """The scene is about to be cleared: forget everything that points at its nodes.

        A running segment job is cancelled (its result would land on removed nodes); training
        goes on, since its inputs are already on disk.
        """
        self.review, self.selected_row, self.last_result = None, None, None
        self.training_cases.clear()
        if self.segmenting:
            self.cancel()
            self.view.info("the scene was closed: segmentation cancelled")
        if self._segment_run is not None:
            shutil.rmtree(self._segment_run.out_dir.parent / "input", ignore_errors=True)
            self._segment_run = None

    def scene_closed(self) -> None:
        """The scene was cleared: a fresh parameter node (the old one went with the scene)."""
        self.parameter_node = get_parameter_node(self.scene)
        self._changed()

    # -------------------------------------------------------------- inputs

    def volume_nodes(self) -> list[Any]:
        return [self.scene.GetNthNodeByClass(i, "vtkMRMLScalarVolumeNode")
                for i in range(self.scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode"))]

    def auto_map(self, only_empty: bool = False) -> dict[str, Any]:
        """Fill the modality selectors from node names (and the reference with the FLAIR)."""
        found = nodes.auto_map_modalities(self.volume_nodes())
        p = self.params
        changes = {key: node for key, node in found.items()
                   if not (only_empty and getattr(p, key) is not None)}
        if p.reference is None and (changes.get("flair") or p.flair) is not None:
            changes["reference"] = changes.get("flair") or p.flair
        if changes:
            self.update(**changes)
        return found

    def set_input(self, modality: str, node: Any) -> None:
        if modality not in MODALITIES:
            raise ValueError(f"unknown modality {modality!r}")
        self.update(**{modality: node})

    # -------------------------------------------------------------- jobs

    def _start(self, kind: str, command: str, arguments: list[str], name: str,
               log_dir: Path) -> Job | None:
        if self.busy:
            raise RuntimeError("another job is running")
        job = Job(cli_command(command, arguments, self.python), name=name,
                  log_path=log_dir / f"{name}.log", interrupt="file")
        try:
            job.start()
        except OSError as error:              # no such Python, no permission, ...
            self.view.error(f"could not start {name}: {error}")
            return None
        self.job, self.job_kind, self._handled = job, kind, None
        self._changed()
        return job

    def poll(self) -> bool:
        """Read the running job's events; handle its end once. True while a job runs."""
        if self.job is None:
            return False
        events = self.job.poll()
        if self.job.finished and self._handled is not self.job:
            self._handled = self.job
            self._job_ended(self.job)
            self._changed()
        elif events:
            self._changed()
        return not self.job.finished

    def wait(self, timeout: float = 600.0, interval: float = 0.1) -> str:
        """Poll until the job ends (headless use and tests; the widget polls from a timer)."""
        deadline = time.monotonic() + timeout
        while self.poll():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.job} still running after {timeout} s")
            time.sleep(interval)
        return self.job.status if self.job else "none"

    def cancel(self, wait: bool = False) -> None:
        """Cancel button: end the running job's whole process tree (the run stays resumable)."""
        if self.busy:
            self.job.cancel(self.cancel_grace, wait=wait)
            if wait:
                self.poll()
            self._changed()

    def _job_ended(self, job: Job) -> None:
        kind = self.job_kind
        if kind == "segment":
            self._segment_ended(job)
            return
        run_dir = str(self.params.run_dir if kind != "retrain" else self._retrain_out)
        if job.status == "done":
            self.failed_runs.discard(run_dir)
            if bundle.bundle_problem(run_dir) is None:
                self.update(model_dir=Path(run_dir))
            self.view.info(f"training finished: {run_dir} is now the model")
        elif job.status == "cancelled":
            self.failed_runs.add(run_dir)
            self.view.info(f"training cancelled; Resume continues it ({run_dir})")
        else:
            self.failed_runs.add(run_dir)
            self.view.error(job.error_message())

    # -------------------------------------------------------------- segment

    def apply(self) -> Job | None:
        """Apply button: start segmenting, or cancel when a segment job runs."""
        if self.segmenting:
            self.cancel()
            return None
        p = self.params
        problem = self.segment_problem(p)
        if problem:
            self.view.error(problem)
            return None
        reference = self.reference(p)
        case = logic.case_name(reference.GetName())
        work = self.work_root / f"segment-{_stamp()}-{case}"
        off_grid = logic.off_grid_inputs(p.inputs)
        if off_grid:
            self.view.info(f"{', '.join(off_grid)} {'is' if len(off_grid) == 1 else 'are'} not on "
                           "the FLAIR volume's grid: resampled onto it (linear) for this run")
        if logic.off_grid_reference(p.inputs, reference):
            self.view.info(f"the reference volume {reference.GetName()!r} is not on the FLAIR "
                           "volume's grid: the result is resampled onto it (nearest neighbour)")
        try:
            inputs = logic.write_case(p.inputs, work / "input", case)
        except (ValueError, OSError) as error:
            self.view.error(f"could not write the input volumes: {error}")
            return None
        out_dir = work / "output"
        self._segment_run = SegmentRun(case, reference, inputs, out_dir, self._segment_method(p),
                                       p.postprocess_ops if p.postprocess else None,
                                       logic.world_geometry(p.flair))
        arguments = commands.segment_arguments(p.model_dir, work / "input" / case, out_dir,
                                               device=p.device,
                                               method=self._segment_method(p))
        return self._start("segment", "segment", arguments, "segment", work)

    @staticmethod
    def _segment_method(p: WeakSegParameters) -> str | None:
        """The method to ask ``segment`` for: None (its own choice: the run's
        ``inference.default_method``, or the best the run has) when the panel's is config's
        default, so a run without that stage or a mixed-supervision run still segments."""
        return None if p.method == defaults.METHOD else p.method

    def _segment_ended(self, job: Job) -> None:
        run = self._segment_run
        self._segment_run = None
        if run is not None:
            # the input volumes (~35 MB each, uncompressed) are of no use once the job ended;
            # the result (compressed) and the log stay for troubleshooting
            shutil.rmtree(run.out_dir.parent / "input", ignore_errors=True)
        if job.status == "cancelled":
            self.view.info("segmentation cancelled")
            return
        if run is None:                              # the scene was closed meanwhile
            return
        if job.status != "done":
            self.view.error(job.error_message())
            return
        try:
            # the result lies on the FLAIR's grid (the reference may lie on another)
            result = logic.import_result(self.scene, run.out_dir, run.case, run.reference,
                                         run.method, run.postprocess_ops, grid=run.grid)
        except (OSError, ValueError, RuntimeError) as error:
            self.view.error(f"segment finished but its result could not be read: {error}\n\n"
                            + job.log_tail())
            return
        result.inputs = run.inputs
        self.last_result = result
        self.review = self._session(result.rows, run.case)
        self.selected_row = None
        table = logic.review_table(self.scene, self.review)
        self.update(segmentation=result.segmentation, review_table=table,
                    result_dir=run.out_dir, reference=run.reference)
        self.view.show_result(result.segmentation, run.reference)

    # -------------------------------------------------------------- review

    def _session(self, rows: list[ReviewRow], case: str) -> ReviewSession:
        """A review of ``rows`` at the panel's threshold for what flags them: the review
        priority, or (a result without it, said once) the difference score."""
        p = self.params
        basis = flag_basis(rows)
        threshold = p.threshold if basis == BY_PRIORITY else p.difference_threshold
        session = ReviewSession(rows, threshold, case=case, basis=basis)
        if not session.by_priority:
            self.view.info(LEGACY_NOTE)
        return session

    def threshold_value(self) -> float:
        """What the threshold slider shows: the threshold of the review's flag basis."""
        p = self.params
        if self.review is not None and not self.review.by_priority:
            return p.difference_threshold
        return p.threshold

    def _refresh_table(self) -> None:
        p = self.params
        if self.review is None:
            return
        table = logic.review_table(self.scene, self.review, node=p.review_table)
        if p.review_table is None:
            self.update(review_table=table)

    def restore_review(self) -> bool:
        """Rebuild the review from the scene's review table (a saved scene was loaded)."""
        p = self.params
        if self.review is not None or p.review_table is None:
            return False
        try:
            rows = [ReviewRow(r["slice"], r["classifier_score"], r["difference_score"],
                              r["flagged"], r["status"] or PENDING,
                              review_priority=r["review_priority"])
                    for r in nodes.rows_from_review_table(p.review_table)]
        except (KeyError, ValueError) as error:
            # said once: the table is left in the scene but no longer taken as the review
            reason = error.args[0] if isinstance(error, KeyError) and error.args else error
            self.view.error(f"the review table {p.review_table.GetName()!r} cannot be read back "
                            f"as a WeakSeg review: {reason}")
            self.update(review_table=None)
            return False
        nodes.set_column_titles_as_header(p.review_table)      # tables saved before the fix
        p.review_table.SetLocked(True)
        reference = self.reference(p)
        case = logic.case_name(reference.GetName()) if reference is not None else ""
        self.review = self._session(rows, case)
        self._refresh_table()                # in review order, with today's columns
        self._changed()
        return True

    def set_threshold(self, value: float) -> int:
        """Threshold slider: re-flag rows live; returns how many flags changed. It sets the
        review-priority threshold, or the difference-score one while the review is of a result
        without priority."""
        if self.review is not None and not self.review.by_priority:
            self.update(difference_threshold=float(value))
        else:
            self.update(threshold=float(value))
        if self.review is None:
            return 0
        changed = self.review.reflag(value)
        self._refresh_table()
        self._changed()
        return changed

    def next_flagged(self) -> int | None:
        """Next flagged slice: select the next flagged row not yet reviewed after the selected
        one, in review order (wrapping around), and move the slice views there; its slice."""
        if self.review is None:
            return None
        index = self.review.next_flagged(self.selected_row)
        if index is None:
            return None
        return self.select_row(index)

    def select_model_index(self, model_row: int, model_column: int = 0,
                           transposed: bool = False) -> int | None:
        """A click on the review table view at a model index (header rows aside): the slice."""
        table = self.params.review_table
        if table is None:
            return self.select_row(None)
        return self.select_row(nodes.table_row_of_model_index(table, model_row, model_column,
                                                              transposed))

    def select_row(self, index: int | None) -> int | None:
        """A click on a review row: select it and move the slice views there; the slice index."""
        if self.review is None or index is None or not 0 <= index < len(self.review.rows):
            self.selected_row = None
            self._changed()
            return None
        self.selected_row = index
        slice_index = self.review.rows[index].slice
        # the table counts the FLAIR's slices (along i or j for a scan not acquired axially)
        reference = self.params.flair or self.reference()
        if reference is not None:
            axis = self.last_result.slice_axis if self.last_result is not None else "k"
            logic.jump_to_slice(self.scene, reference, slice_index, axis)
        self._changed()
        return slice_index

    def _decide(self, status: str) -> None:
        if self.review is None or self.selected_row is None:
            return
        self.review.set_status(self.selected_row, status, who=self.params.reviewer or None)
        self._refresh_table()
        self._changed()

    def accept(self) -> None:
        self._decide(ACCEPTED)

    def reject(self) -> None:
        self._decide(REJECTED)

    def correct(self) -> None:
        """Correct in Segment Editor: open the editor on the result, mark the slice corrected."""
        p = self.params
        if p.segmentation is None:
            return
        self._decide(CORRECTED)
        self.view.open_segment_editor(p.segmentation, self.reference(p))

    # -------------------------------------------------------------- train

    def _training_data(self, p: WeakSegParameters) -> tuple[Path, Path | None] | None:
        """(data folder, ranges CSV or None) of the run: what train and resume are given."""
        if p.train_source == "cohort":
            return (Path(p.cohort_dir), None) if p.cohort_dir and Path(p.cohort_dir).is_dir() \
                else None
        if p.run_dir is None:
            return None
        inputs = self.training_inputs_dir(p.run_dir)
        if (inputs / "cohort").is_dir() and (inputs / "ranges.csv").is_file():
            return inputs / "cohort", inputs / "ranges.csv"
        return None

    @staticmethod
    def training_inputs_dir(run_dir: str | Path) -> Path:
        """Beside the run (not in a temporary folder), so Resume finds the same data later."""
        run_dir = Path(run_dir)
        return run_dir.with_name(run_dir.name + "-inputs")

    def default_run_dir(self) -> Path:
        return Path.home() / "WeakSeg" / "runs" / f"run-{_stamp()}"

    def mark_slice(self, which: str, slice_index: int | None = None) -> logic.TrainingCase:
        """First/last tumour slice button: the current slice (of the Red view) for this case."""
        if which not in ("first", "last"):
            raise ValueError("which must be 'first' or 'last'")
        p = self.params
        reference = self.reference(p)
        if reference is None or p.flair is None:
            raise RuntimeError("select the case's volumes first")
        if slice_index is None:
            slice_index = logic.current_slice_index(self.scene, reference)
        name = logic.case_name(reference.GetName())
        case = self.training_cases.get(name) or logic.TrainingCase(name, {})
        case.volumes = dict(p.inputs)
        setattr(case, which, int(slice_index))
        self.training_cases[name] = case
        ranges = {c.name: tuple(sorted((c.first, c.last))) for c in self.training_cases.values()
                  if c.complete}
        self.update(ranges=ranges)
        return case

    def clear_ranges(self) -> None:
        self.training_cases.clear()
        self.update(ranges={})

    def train(self) -> Job | None:
        """Train button: a new run from the cohort folder or from the marked loaded volumes."""
        p = self.params
        if p.run_dir is None:
            p = self.update(run_dir=self.default_run_dir())
        problem = self.train_problem(p)
        if problem:
            self.view.error(problem)
            return None
        ranges = None
        data = p.cohort_dir
        if p.train_source == "volumes":
            inputs = self.training_inputs_dir(p.run_dir)
            if inputs.exists() and any(inputs.iterdir()):
                if not self.view.ask(f"{inputs} already holds training inputs. Replace them?"):
                    return None
                import shutil

                shutil.rmtree(inputs)
            try:
                data, ranges = logic.write_training_cohort(
                    [c for c in self.training_cases.values() if c.complete], inputs)
            except (ValueError, OSError) as error:
                self.view.error(f"could not write the training volumes: {error}")
                return None
        arguments = commands.train_arguments(data, p.run_dir, device=p.device, ranges=ranges,
                                             overrides=self.train_overrides) + [*self.train_extra]
        self.failed_runs.discard(str(p.run_dir))
        return self._start("train", "train", arguments, "train", self._log_dir(p.run_dir))

    def resume(self) -> Job | None:
        """Resume button: ``train --resume`` on the run folder with the same data."""
        p = self.params
        data = self._training_data(p)
        if p.run_dir is None or data is None:
            self.view.error("nothing to resume: choose the run folder and its training data")
            return None
        arguments = commands.train_arguments(data[0], p.run_dir, device=p.device, resume=True,
                                             ranges=data[1], overrides=self.train_overrides)
        arguments += [*self.train_extra]
        return self._start("resume", "train", arguments, "resume", self._log_dir(p.run_dir))

    def retrain(self) -> Job | None:
        """Retrain with reviewed slices: mixed supervision on this case (issue 7).

        Writes the case's volumes, the review records with the corrected label map
        (accepted/corrected slices become full annotations) and slice labels for the other
        slices from that label map, then runs ``train --mode mixed`` into a new run folder
        beside the model.
        """
        p = self.params
        if self.review is None or not self.review.has_annotations:
            self.view.error("accept or correct at least one slice first")
            return None
        reference = self.reference(p)
        if p.segmentation is None or reference is None or p.model_dir is None:
            self.view.error("retraining needs the segmentation, its volumes and the model")
            return None
        folder = self.work_root / f"retrain-{_stamp()}-{self.review.case}"
        try:
            logic.write_case(p.inputs, folder / "input", self.review.case)
            records = self._write_records(folder / logic.export_names(self.review.case)["json"])
            labels = self.review.write_slice_labels(
                folder / "labels.csv", nodes.labelmap_from_segmentation_node(p.segmentation,
                                                                             reference))
        except (ValueError, OSError, RuntimeError) as error:
            self.view.error(f"could not write the retraining inputs: {error}")
            return None
        model = Path(p.model_dir)
        # beside the model, but never inside the extension's own folder (the shipped default)
        base = self.work_root / "models" / model.name if defaults.is_default_model(model) \
            else model
        # a weak run's self-trained segmenter learns from the corrections (issue 13); a
        # mixed-supervision model trains seed 001's U-Net anew
        refine = bundle.refinable(model)
        kind = "reviewed" if refine else "mixed"
        self._retrain_out = base.with_name(f"{model.name}-{kind}-{_stamp()}")
        arguments = commands.retrain_arguments(records, folder / "input", self._retrain_out,
                                               device=p.device, labels=labels,
                                               overrides=self.train_overrides,
                                               base=model if refine else None)
        return self._start("retrain", "train", arguments, "retrain", folder)

    @staticmethod
    def _log_dir(run_dir: Path) -> Path:
        """Beside the run: the CLI wants the run folder itself new and empty."""
        return Path(run_dir).with_name(Path(run_dir).name + "-logs")

    # -------------------------------------------------------------- export

    def _target(self, key: str) -> Path | None:
        """Export path of one kind; asks before replacing a file (None: the user said no)."""
        p = self.params
        if p.export_dir is None or self.review is None and key in ("csv", "json"):
            return None
        case = self.review.case if self.review else logic.case_name(self.reference(p).GetName())
        path = Path(p.export_dir) / logic.export_names(case)[key]
        if path.exists() and not self.view.ask(f"{path} exists. Overwrite it?"):
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def export_segmentation(self) -> Path | None:
        p = self.params
        path = self._target("seg")
        return logic.export_segmentation(p.segmentation, path) if path else None

    def export_labelmap(self) -> Path | None:
        p = self.params
        path = self._target("nifti")
        return logic.export_labelmap(p.segmentation, self.reference(p), path) if path else None

    def export_csv(self) -> Path | None:
        path = self._target("csv")
        return self.review.write_csv(path) if path else None

    def export_json(self) -> Path | None:
        path = self._target("json")
        return self._write_records(path) if path else None

    def _write_records(self, path: Path) -> Path:
        """Review JSON plus the current label map (with the user's corrections) beside it,
        named in every record as ``mask_path`` (relative, so the pair can be moved)."""
        p = self.params
        reference = self.reference(p)
        labels = path.with_name(path.name.replace("_review.json", "_review_labels.nii.gz"))
        logic.export_labelmap(p.segmentation, reference, labels)
        images = {k: node.GetName() for k, node in p.inputs.items()}    # the volumes reviewed
        return self.review.write_json(
            path, mask_path=labels.name, reference=reference.GetName(),
            model=str(p.model_dir or ""), images=images, labels=str(labels),
            reviewer=p.reviewer or None)
