"""Every default of WeakSeg in one place: profiles, data rules and pipeline hyper-parameters.

Values follow DESIGN.md ("Data", "Pipeline", "Profiles"). A run records the resolved config in
its manifest, so a result can always be traced to the numbers that produced it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, replace
from typing import Any

#: Modalities WeakSeg knows, in channel order. FLAIR is required.
MODALITIES: tuple[str, ...] = ("flair", "t1", "t1ce", "t2")
REQUIRED_MODALITY = "flair"
MASK_KEY = "seg"
#: array layout every image is brought to on read (SimpleITK DICOMOrient code; BraTS files
#: already have it, so they pass unchanged): numpy axis 0 inferior–superior
CANONICAL_ORIENTATION = "LPS"

#: BraTS convention for HD95 when exactly one of prediction / truth is empty.
HD95_ONE_EMPTY_MM = 373.13


@dataclass(frozen=True)
class DataConfig:
    """Preprocessing (seed 000 §3.1.1) and slice-label rules."""

    clip_percentiles: tuple[float, float] = (1.0, 99.0)
    inplane_scale: float = 1.0          # fast profile: 0.5
    # in-plane spacing (mm) every image is resampled to before ``inplane_scale`` (slice
    # thickness kept); recorded with the run, so segment uses the spacing it was trained at
    inplane_spacing: float = 1.0
    spacing_tolerance: float = 0.02     # relative: a spacing this close is not resampled
    min_overlap: float = 0.1            # another modality must cover this much of the FLAIR box
    size: int = 128                     # training crop/pad and patch size, in preprocessed pixels
    # Training drops this fraction of the brain's superior–inferior extent at each end (seed
    # 000 drops 30 of 155 slices at 1 mm). A fraction, not a slice count or mm: a 20-slice
    # clinical FLAIR keeps its brain slices, and tcga-lgg's written spacing is not physical.
    # On brats2018-multimodal 0.1 keeps exactly the slices 30 did (the zero-fraction rule
    # below already drops the ends there).
    trim_fraction: float = 0.1
    max_zero_fraction: float = 0.5      # training slices with more zero voxels are dropped
    erode: int = 2                      # in-plane disk radius when deriving slice labels from a mask
    # Brain mask (issue 14): "auto" extracts the brain of a scan with its skull and uses the
    # non-background voxels of a skull-stripped one; "on" always extracts; "off" = non-zero
    # voxels (BraTS). Extraction by deepbet (weights in its wheel, offline) or "otsu" (classical).
    brain_mask: str = "auto"
    brain_method: str = "deepbet"
    # skull-stripped = one value on ≥ 90 % of the border and on ≥ this fraction of all voxels
    # (BraTS: 0.80–0.87; tcga-lgg, with skull: 0.07–0.33)
    skull_stripped_background: float = 0.5


@dataclass(frozen=True)
class ClassifierConfig:
    width_divisor: int = 1
    upsample: int = 2
    lr: float = 1e-4
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.999)
    plateau_factor: float = 0.1
    plateau_patience: int | None = 5    # None: no plateau schedule, the learning rate stays
    epochs: int = 100
    batch_size: int = 32
    time_budget_s: float | None = None
    # Weight averaging (SWA, Izmailov et al. 2018) over the last ``average_last`` fraction of the
    # epochs, BatchNorm recomputed, instead of the epoch with the best validation AUC: None =
    # keep the best epoch (the paper's model selection).
    average_last: float | None = None
    # Train on the validation patients too (only with ``average_last``: no epoch is selected on
    # them, so they are free to learn from; the gate's calibration still reads their scores).
    # Classifier alone on the CV's folds (benchmarks/classifier_cv.py --tag trainval, flips on):
    # held-out AUC 0.891/0.970/0.985/0.924/0.937 against 0.936/0.968/0.938/0.896/0.909 — mean
    # +0.012, fold 3 above 0.90 and fold 0 below it (ASE 0.84 → 0.58). Off until a full CV
    # measures what the later stages make of it.
    train_on_validation: bool = False
    # Flips + intensity jitter: on the 6-patient real sample they lift validation AUC from
    # ~0.5 (memorised patients) to 0.8–0.9 (benchmarks/results notes, issue 3).
    augment: bool = True
    intensity_jitter: float = 0.1
    # Issue 12: with 13–16 training patients the classifier still memorised patients (AUC 0.73
    # on 30 other BraTS patients); a small affine and a gamma join the flips and the scale.
    affine_degrees: float = 10.0
    affine_scale: float = 0.1
    affine_translate: float = 0.05
    gamma: float = 0.2
    pool: str = "avg"                   # the head's global pooling: avg | max (models/classifier)


@dataclass(frozen=True)
class SeedConfig:
    method: str = "rise"                # rise | gradcampp
    rise_masks: int = 4000
    rise_grid: int = 8
    rise_p: float = 0.5
    rise_batch: int = 250
    rise_seed: int = 0                  # RISE masks come from this seed: same on every rank
    # "expected" (paper: ÷ N·p) or "coverage" (÷ how often each pixel was revealed). With 250
    # masks the paper's maps are mostly the masks' coverage pattern (see explain/rise.py); with
    # the FLAIR prior below that matters little (positive seeds 0.90 vs 0.87 inside the tumour).
    rise_normalise: str = "expected"
    # RISE's forwards in bfloat16 on a CPU that has it natively (explain/rise.py): 2.1× less CPU
    # time; on 32 tumour slices of fold 0 the rise+prior seeds kept 99.98 % of their pixels and
    # their overlap with the masks (positive 0.913, negative 0.997) (issue 17)
    rise_bf16: bool = True
    positive_threshold: float = 0.8
    negative_threshold: float = 0.2
    # Not in seed 000 (DESIGN.md's rule is saliency > 0.8 / < 0.2 alone). On the real sample that
    # rule gave positive seeds only 7–29 % inside the tumour (issue 3/4 notes); requiring FLAIR
    # hyperintensity as well (seed 003's refinement of CAM seeds by image evidence) gives 91 %,
    # and FLAIR below the brain mean is a 99.6 %-reliable negative covering half the brain
    # (fold 0 of benchmarks/real_cross_validation.py, measured from its saved saliency).
    intensity_prior: bool = True
    prior_saliency_threshold: float = 0.5   # on saliency min-max scaled per slice in the brain
    prior_positive_sd: float = 1.5          # positive: FLAIR > μ + 1.5 σ of the slice's brain
    prior_negative_sd: float = 0.0          # negative: FLAIR < μ of the slice's brain


@dataclass(frozen=True)
class GanConfig:
    latent: int = 100
    blocks: int = 6
    width_divisor: int = 1
    real_label: float = 0.9
    fake_label: float = 0.0
    lr: float = 2e-4
    beta1: float = 0.5
    halve_every: int = 50
    epochs: int = 100
    batch_size: int = 32
    time_budget_s: float | None = None


@dataclass(frozen=True)
class ConverterConfig:
    max_negative_fraction: float = 0.95
    min_classifier_score: float = 0.5   # true positives: label 1 and classifier score ≥ this
    l1_weight: float = 100.0
    adversarial_weight: float = 1.0
    kl_weight: float = 1.0
    epochs: int = 100
    batch_size: int = 32
    lr: float = 2e-4
    beta1: float = 0.5
    time_budget_s: float | None = None


@dataclass(frozen=True)
class SegmenterConfig:
    seed_weight: float = 1.0
    # Not in seed 000: average the seed BCE over positive and negative pixels separately. Off
    # by default (the real-data experiment ran without it); on fold 0 the under-segmenter,
    # whose healthy slices make positive pixels rare, learned S < 0.5 everywhere without it.
    balance_seeds: bool = False
    reconstruction_weight: float = 0.5
    size_weight: float = 0.01
    epochs: int = 200
    batch_size: int = 32
    lr: float = 1e-4
    halve_every: int = 50
    min_updates: int = 0                # fast profile: 140, what 10 epochs give on 6 real cases
    time_budget_s: float | None = None


@dataclass(frozen=True)
class SelfTrainConfig:
    """The last stage (seed 003 step 3, issue 12): one segmenter trained on the pipeline's own
    pseudo-masks of the training slices, with healthy slices (by their label) forced empty, on
    every channel, with augmentation. The fully supervised reference of the evaluation trains
    with the very same settings on the true masks (same budget)."""

    # pseudo-mask = mean of these stages' S on the training slices > threshold: an ensemble,
    # so one collapsed segmenter (the under-segmenter on fold 0 of the 8-case CV) cannot empty it
    sources: tuple[str, ...] = ("segmenter", "under", "over", "seed_only")
    threshold: float = 0.5
    # a source segmenting fewer of the training tumour slices than this has collapsed to
    # "empty" and is left out of the mean (it would veto every pseudo-mask)
    min_segmented_fraction: float = 0.1
    min_pseudo_px: int = 10             # tumour slices with a smaller pseudo-mask are left out
    # Image evidence (seed 003's refinement of pseudo-labels by low-level cues, as the seeds'
    # intensity prior): a pseudo-mask voxel must be FLAIR-bright, ≥ μ + min_flair_sd·σ of its
    # slice's brain; dark holes it then encloses (a necrotic core) are given back. The sources'
    # mean alone is 1–2 px too wide: 15–26 % of its voxels lay outside the tumour, half of them
    # within 2 px, at FLAIR μ + 0.8σ (median) against μ + 1.9σ inside (CV training patients,
    # issue 12 note); the network trained on it learned that wide rim. None: no cut.
    min_flair_sd: float | None = 1.0
    dice_weight: float = 1.0            # loss = BCE + dice_weight · soft Dice (MONAI)
    epochs: int = 100
    batch_size: int = 32
    lr: float = 1e-3
    halve_every: int = 40
    time_budget_s: float | None = None
    augment: bool = True
    affine_degrees: float = 10.0
    affine_scale: float = 0.1
    affine_translate: float = 0.05
    intensity_jitter: float = 0.1
    gamma: float = 0.2
    # Learning from a review (issue 13): `train --mode mixed --base RUN --review R` fine-tunes
    # RUN's self-trained segmenter on its own outputs for RUN's training slices (what it knows)
    # plus the reviewed slices (what the radiologist fixed), instead of training a new network
    # from scratch, which lost what self-training had learned (held-out Dice 0.69 → 0.30).
    review_repeat: int = 10             # a reviewed slice counts this often per epoch
    review_lr_factor: float = 0.1       # fine-tuning learning rate = lr × this
    review_epochs: int = 10
    # The reviewed cases' slices nobody reviewed train with the base network's own segmentation
    # (True), or not at all (False: next to a corrected slice they may repeat the error the
    # reviewer fixed). Loop simulation on today's CV model (benchmarks/review_loop.py, 20
    # unreviewed patients): True 0.797 → 0.799, False → 0.799; neither beats its own control
    # (reviewer changing nothing) — README "The review loop". Kept True.
    review_own_output: bool = True
    # Patient-level validation of a review (issue 13): this share of the reviewed patients
    # (⌊share × n⌋; none below 1, so a review of fewer than 5 patients trains on all) is held
    # out of the fine-tuning, and the epoch — 0 being the base network itself — whose volume
    # Dice on their reviewed slices is highest is kept. A correction can teach the network
    # something that hurts other patients: the loop with all 16 training patients of each CV
    # fold reviewed (benchmarks/review_loop.py --reviewed training) gained in folds 1–4 but
    # fold 0 fell 0.74 → 0.64 (emptied false positives at the brain's edge; two cortical
    # tumours then shrank, 0.38/0.84 → 0.24/0.56); 20 held-out patients 0.797 → 0.803, Δ +0.005
    # [−0.034, +0.035]. With 0.2: → 0.815, Δ +0.017 [−0.004, +0.038], every fold better; the
    # reviewer changing nothing now changes nothing (the base is kept in 4 folds of 5).
    review_validation_fraction: float | None = 0.2


@dataclass(frozen=True)
class RefinementConfig:
    threshold: float = 0.5
    dilation_radii: tuple[int, ...] = (1, 2, 3, 4, 5)
    max_score: float = 0.5
    # Not in seed 000: an undertrained S breaks into thousands of specks (15,688 components on
    # 44 tiny-phantom slices, 149 s of classifier calls). Specks below min_component_px and all
    # but the max_components largest per slice are not tried; they could not hide a tumour.
    min_component_px: int = 10
    max_components: int = 5
    # Seed 000 hides a component as x·(1 − dilated). Our classifiers read that black hole as
    # abnormal: on fold 0 of the real sample 0 of 57 components were accepted (mean score 0.76,
    # above the 0.60 of the untouched slices); painting the hidden brain with each channel's
    # median of the rest of the brain accepted 30 %. "zero" restores the paper's rule.
    fill: str = "median"


@dataclass(frozen=True)
class InferenceConfig:
    patch: int = 128                    # recorded for the manifest; inference uses data.size
    stride: int = 64
    gate: float = 0.5
    # Not in seed 000: gating at 0.5 threw away every tumour patch the classifier missed (its
    # held-out sensitivity is ~0.75 on the real sample): fold 0's held-out combined volume Dice
    # was 0.69 at gate 0.5, 0.80 at the 95 %-sensitivity gate (0.45), 0.87 at 0.25 or none.
    # The gate is lowered, never raised, to the score that keeps this fraction of the training
    # tumour slices (None: the fixed gate alone).
    gate_sensitivity: float | None = 0.99
    threshold: float = 0.5
    # Post-processing `segment` applies (issue 6). Over the 8 held-out cases of the real-sample
    # cross-validation it raised volume Dice 0.756 → 0.761 and tumour-slice Dice 0.613 → 0.615
    # and lowered it on no case; "largest" cut HD95 28.8 → 19.9 mm but dropped tumour-slice
    # Dice to 0.594 (multifocal tumours), so it stays an option (benchmarks/postprocess_effect.py).
    postprocess: str = "min_volume:500,fill_holes"
    difference_threshold: float = 0.2   # seed 000's filter: the filtering table (Table 6)
    # The method `segment`, `evaluate`'s examples and the panel use unless told otherwise.
    default_method: str = "self_trained"
    # Review priority (issue 13, inference/review.py). How likely a slice is wrong: the mean of
    # these mask-free scores, chosen by the AUROC for "slice Dice < 0.5" on the CV's held-out
    # patients (benchmarks/review_priority.py): classifier_conflict + continuity 0.865 on today's
    # default (0.876 on the earlier model); adding disagreement lowers it (it fails where a
    # segmenter collapsed); seed 000's difference score alone 0.447.
    review_scores: tuple[str, ...] = ("classifier_conflict", "continuity")
    # The review budget: this fraction of each case's segmented slices, those with the most
    # expected wrong voxels, comes first and is flagged; every other slice follows by how likely
    # it is wrong. Expected wrong voxels = the default segmenter's own unsure voxels
    # (Σ min(p, 1 − p)) + likely wrong × the slice's extent, both in voxels, unweighted. One
    # weighting cannot serve both goals (the oracle's own AUROC for bad slices is 0.22–0.26:
    # most wrong voxels sit on large slices of Dice 0.7–0.9). On today's full CV: AUROC 0.821,
    # 60 % of the oracle's volume-Dice gain at 10 % (was 0.841 / 41 % with likely wrong × extent
    # alone); numbers: README "Review priority". None: one tier.
    review_flag_fraction: float | None = 0.10
    review_threshold: float = 0.5      # the tiers' boundary: flagged slices lie above it
    # Networks (segmenter stage names, or "classifier" for the patch score) whose output is
    # averaged over the four in-plane flips at inference (4× their cost). The networks trained
    # with flips (all of them) should agree with themselves flipped; averaging removes what they
    # do not agree on. On the 20 held-out patients of the 5-fold CV: flips on the classifier
    # raised its held-out AUC in 4 folds of 5 (0.930/0.959/0.930/0.883/0.914 →
    # 0.936/0.968/0.938/0.896/0.909) and the review priority's AUROC (0.806 → 0.821); the
    # segmentation does not read the score (self_trained is not gated), so it is unchanged;
    # ~3 s more per case on 2 CPU cores. On self_train: volume Dice 0.759 → 0.762 (Δ +0.003
    # [−0.000, +0.006], benchmarks/results/cv_reevaluate_flips.json) for 4× that network's
    # time: off.
    test_time_flips: tuple[str, ...] = ("classifier",)
    # The slice score (the classifier's highest patch score per slice) smoothed along z by a
    # Gaussian of this σ in mm (0: off). A tumour spans many slices; the 2D classifier judges
    # each alone. On the 20 held-out patients of three 5-fold CV models (per-slice scores of
    # cv_reevaluate.py, smoothed after the fact) every fold's AUC rose for every σ tried
    # (1, 1.5, 2, 3, 4 mm), more with more σ; 2 mm — a fifth of the smallest tumour the
    # post-processing keeps — on today's model: 0.936/0.968/0.938/0.896/0.909 →
    # 0.941/0.978/0.951/0.921/0.927. The segmentation does not read it.
    slice_score_sigma_mm: float = 2.0
    # Patches per forward at inference. With 2 CPU threads on a shared machine 512 took half the
    # wall time of 64 (fewer thread hand-offs; same CPU time when the machine is idle), peak RSS
    # stays < 1.5 GB (benchmarks/speed.py, issue 17). Outputs do not depend on it.
    batch_size: int = 512
    # the last batch of each case padded to a multiple of this: a 50-volume batch grew peak RSS
    # 1.16 → 1.58 GB while distinct cases passed (oneDNN's kernel cache keyed by batch shape;
    # with that cache off, 1.19 → 1.26 GB over 12 cases); 1 = no padding
    batch_quantum: int = 32
    filtering_thresholds: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(10))


@dataclass(frozen=True)
class BaselineConfig:
    flair_sd: float = 2.0               # flair_threshold: FLAIR > mean + k·SD inside the brain
    l1_median: int = 5
    l1_threshold: float = 0.2


@dataclass(frozen=True)
class MixedConfig:
    """Mixed supervision (seed 001 §3.1; thesis §2.2.3.2): the U-Net with an image-level
    classification branch, trained on fully annotated slices plus slice labels."""

    width_divisor: int = 1              # U-Net widths and the branch's maps / FC widths ÷ this
    latent: int = 100
    pool: int = 8                       # branch: mean-pool k×k, stride k
    branch_maps: int = 32               # branch: conv 3×3 → this many maps
    fc_widths: tuple[int, ...] = (300, 250, 200, 150, 100, 50, 2)   # FC1…FC7; FC1‖FC5 → FC6
    seg_weight: float = 0.7             # a in a·L_seg + (1 − a)·L_cls
    healthy_weight: float = 0.7         # t0: total weight of healthy pixels in a batch
    tumour_weight: float = 0.3          # t1: total weight of tumour pixels in a batch
    masked_per_batch: int = 4           # k: tumour slices with a mask
    unmasked_per_batch: int = 4         # n: tumour slices with a slice label only
    healthy_per_batch: int = 2          # m: healthy slices (mask = zeros)
    batches_per_iteration: int = 4      # gradients summed over this many batches per step
    momentum: float = 0.9
    lr: float = 0.25                    # thesis: α_init, on the normalised gradient
    lr_min: float = 0.001               # thesis: α_min
    lr_period: int = 200                # thesis: F iterations between checks (doubles)
    lr_threshold: float = 0.98          # thesis: d_loss, halve when loss > d_loss × previous
    iterations_per_epoch: int = 100
    epochs: int = 100
    flip: bool = True                   # left-right flips
    threshold: float = 0.5              # tumour probability → label
    time_budget_s: float | None = None


@dataclass(frozen=True)
class RuntimeConfig:
    device: str = "auto"                # auto | cpu | cuda
    amp_bf16: bool = False
    channels_last: bool = False
    pin_memory: bool = False
    cudnn_benchmark: bool = False
    num_workers: int = 0
    seed: int = 0
    # A stage's epoch checkpoint is written after its first and last epoch and otherwise at
    # most this often (seconds): the demo's over-segmenter ran 668 one-slice epochs and spent
    # ~80 of its 96 s writing checkpoints (issue 12's demo time). A kill loses at most this
    # much training; a resumed stage repeats the same epochs (each epoch is seeded).
    checkpoint_every_s: float = 10.0


@dataclass(frozen=True)
class Profile:
    name: str
    data: DataConfig = field(default_factory=DataConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    seeds: SeedConfig = field(default_factory=SeedConfig)
    gan: GanConfig = field(default_factory=GanConfig)
    converter: ConverterConfig = field(default_factory=ConverterConfig)
    segmenter: SegmenterConfig = field(default_factory=SegmenterConfig)
    refinement: RefinementConfig = field(default_factory=RefinementConfig)
    selftrain: SelfTrainConfig = field(default_factory=SelfTrainConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    baseline: BaselineConfig = field(default_factory=BaselineConfig)
    mixed: MixedConfig = field(default_factory=MixedConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _paper() -> Profile:
    return Profile(
        name="paper",
        runtime=RuntimeConfig(amp_bf16=True, channels_last=True, pin_memory=True,
                              cudnn_benchmark=True, num_workers=4),
    )


def _fast() -> Profile:
    """2-core CPU: half in-plane resolution (64 px patches see what 128 px see at full scale),
    widths ÷ 4, few time-boxed epochs, 250 RISE masks.

    Measured on the 2-core CPU (batch of 125 slices, 2×64×64, width ÷ 4): the classifier's
    ×2 upsampling costs 6× in inference (1.21 s vs 0.21 s) and channels-last memory 3.7×
    (4.48 s vs 1.21 s), so the fast profile classifies at its own ½ scale, channels-last."""
    return Profile(
        name="fast",
        data=DataConfig(inplane_scale=0.5, size=64),
        # Issue 12: 12 epochs with the LR cut ×0.1 after 3 epochs without a better inner-val AUC
        # (3 patients: a noisy signal) stopped learning by epoch ~8 and kept epoch 5; fold 0's
        # held-out AUC was 0.814. 30 epochs at a constant LR, the last 15 averaged (SWA): 0.930
        # (benchmarks/classifier_cv.py --tag swa30; all folds: README).
        classifier=ClassifierConfig(width_divisor=4, upsample=1, epochs=30, batch_size=32,
                                    plateau_patience=None, average_last=0.5,
                                    time_budget_s=300.0),
        seeds=SeedConfig(rise_masks=250, rise_batch=125),
        # ~130 healthy training slices make 4–5 batches an epoch: 10 epochs gave G 30 updates and
        # flat grey samples; 400 epochs (~1,200 updates) give brain-like ones (issue 3 note).
        gan=GanConfig(width_divisor=4, epochs=400, halve_every=200, time_budget_s=90.0),
        converter=ConverterConfig(epochs=100, time_budget_s=90.0),
        # 10 epochs at the paper's 1e-4 left S ≈ 0.4 everywhere (seed BCE 0.69 → 0.44, nothing
        # above 0.5); 1e-3 reaches tumour-slice Dice 0.78 / 0.81 (train / held-out) on fold 0.
        segmenter=SegmenterConfig(epochs=10, lr=1e-3, halve_every=8, min_updates=140,
                                  time_budget_s=60.0),
        # Budgets (issue 12): one fold of the 20-case cross-validation (13 training patients,
        # ~1,200 slices) must train in ~15 min on 2 cores; see benchmarks/cohort_cv.py.
        selftrain=SelfTrainConfig(epochs=30, halve_every=12, time_budget_s=100.0),
        inference=InferenceConfig(patch=64, stride=32),
        mixed=MixedConfig(width_divisor=4, batches_per_iteration=2, lr_period=20,
                          iterations_per_epoch=10, epochs=30, time_budget_s=180.0),
        runtime=RuntimeConfig(channels_last=True),
    )


PROFILES = {"paper": _paper, "fast": _fast}

#: keys older runs recorded that this version no longer has: ignored when a run is read
#: (data.trim, a slice count, became data.trim_fraction in issue 14; inference.review_extent_offset
#: gave way to inference.review_flag_fraction in issue 13)
RETIRED_KEYS: dict[str, frozenset[str]] = {"data": frozenset({"trim"}),
                                           "inference": frozenset({"review_extent_offset"})}
#: recorded keys whose value belonged to a retired key's scheme: where the retired key is
#: recorded, they take today's default (0.21 was a threshold on the one-tier priority)
SUPERSEDED_BY_RETIRED: dict[str, dict[str, tuple[str, ...]]] = {
    "inference": {"review_extent_offset": ("review_threshold",)}}

#: ``weakseg demo``: the fast profile sized for ~5 minutes on a 2-core CPU. The demo phantom has
#: 2 mm voxels, already the fast profile's ½ in-plane scale, so it is not scaled again; 15
#: time budgets are cut to match the smaller cohort.
#: The demo's 4 training cases give 149 slices with ~3 % positive seed pixels; there the
#: initial and seed-only segmenters collapsed to empty (volume Dice 0 on the held-out phantoms)
#: and the balanced seed BCE brings them back (initial 0.495, combined 0.536). On the real
#: sample's fold 0 the balanced loss lowered combined from 0.843 to 0.668, so only the demo uses it.
DEMO_OVERRIDES = ["data.inplane_scale=1.0", "classifier.time_budget_s=45",
                  "gan.time_budget_s=40", "converter.time_budget_s=30",
                  "segmenter.time_budget_s=30", "segmenter.balance_seeds=true",
                  "selftrain.time_budget_s=45"]


def get_profile(name: str, **overrides: Any) -> Profile:
    """Return a fresh profile; ``overrides`` replace whole sections, e.g. ``data=DataConfig(...)``."""
    try:
        profile = PROFILES[name]()
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}") from None
    return replace(profile, **overrides) if overrides else profile


def apply_overrides(profile: Profile, assignments: list[str]) -> Profile:
    """``["classifier.epochs=3", "seeds.method=gradcampp"]`` → a new profile. Values are parsed
    to the type of the field they replace, so a typo fails here and not mid-run."""
    for assignment in assignments:
        path, sep, text = assignment.partition("=")
        section_name, dot, field_name = path.strip().partition(".")
        if not sep or not dot:
            raise ValueError(f"override '{assignment}' must look like section.field=value")
        section = getattr(profile, section_name, None)
        if section is None or not dataclasses.is_dataclass(section):
            raise ValueError(f"override '{assignment}': no config section '{section_name}'")
        if field_name not in {f.name for f in dataclasses.fields(section)}:
            raise ValueError(f"override '{assignment}': section '{section_name}' has no field "
                             f"'{field_name}'")
        value = _parse_like(getattr(section, field_name), text.strip(), assignment)
        profile = replace(profile, **{section_name: replace(section, **{field_name: value})})
    return profile


def profile_from_dict(data: dict[str, Any]) -> Profile:
    """The profile a run recorded in its manifest (lists back to tuples; unknown keys are an
    error, missing ones take today's defaults of that profile)."""
    profile = get_profile(str(data.get("name", "fast")))
    for section_field in dataclasses.fields(profile):
        values = data.get(section_field.name)
        section = getattr(profile, section_field.name)
        if not isinstance(values, dict) or not dataclasses.is_dataclass(section):
            continue
        known = {f.name for f in dataclasses.fields(section)}
        unknown = sorted(set(values) - known - RETIRED_KEYS.get(section_field.name, set()))
        if unknown:
            raise ValueError(f"config section '{section_field.name}' has unknown keys {unknown}")
        stale = {key for retired, keys in SUPERSEDED_BY_RETIRED.get(section_field.name, {}).items()
                 if retired in values for key in keys}
        typed = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()
                 if k in known and k not in stale}
        profile = replace(profile, **{section_field.name: replace(section, **typed)})
    return profile


def _parse_like(current: Any, text: str, assignment: str) -> Any:
    try:
        if text.lower() in ("none", "null"):
            return None
        if isinstance(current, bool):
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return text.lower() in ("true", "1")
        if isinstance(current, tuple):
            items = [t.strip() for t in text.strip("()[] ").split(",") if t.strip()]
            if current:
                return tuple(type(current[0])(t) for t in items)
            try:                # an empty default says nothing of its type: numbers, else names
                return tuple(float(t) for t in items)
            except ValueError:
                return tuple(items)
        if isinstance(current, int):
            return int(text)
        if isinstance(current, float) or current is None:
            return float(text)
        return type(current)(text)
    except ValueError:
        raise ValueError(f"override '{assignment}': cannot read '{text}' as "
                         f"{type(current).__name__}") from None
