"""Pydantic models at the HTTP boundary: the training config a client posts and what the API answers.

``ConfigIn`` mirrors :mod:`ssd.config` section by section with ``extra="forbid"``; each field
carries a short help text and, as its default, the value of the ``default`` preset
(``ssd.config.from_dict({})``), so ``/openapi.json`` documents both. Pydantic checks types and
shapes only; ranges and cross-field rules (strides against source layers, ...) stay in
``ssd.config`` — one place — and :func:`to_config` turns its ``ConfigError`` into a 422.
Only the keys a client sent are forwarded (``exclude_unset``), so ``"preset": "notebook"`` with
a few overrides means the notebook's values for everything else.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.domain import JobStatus
from app.worker.messages import StepMetrics  # a worker's step record: the wire's and the API's
from app.worker.text import MultilineText
from ssd.config import from_dict

DEFAULTS: dict[str, Any] = from_dict({}).to_dict()
NOTEBOOK: dict[str, Any] = from_dict({"preset": "notebook"}).to_dict()


def _d(section: str, key: str) -> Any:
    return DEFAULTS[section][key]


def _pair(value: list[float]) -> tuple[float, float]:
    return float(value[0]), float(value[1])


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelIn(_Section):
    """The base network, the layers the multibox heads attach to, and the classes."""

    backbone: Literal["notebook", "mobilenet_v2", "resnet50"] = Field(
        _d("model", "backbone"),
        description="notebook (the tutorial's network), or mobilenet_v2 / resnet50 from keras.applications.",
    )
    weights: Literal["none", "imagenet"] = Field(
        _d("model", "weights"),
        description="imagenet: Keras' pretrained weights (mobilenet_v2, resnet50); the older name of model.init.",
    )
    init: str = Field(
        _d("model", "init"),
        description=(
            "Where the weights start: none; imagenet; job:<id> (another job's best weights: the backbone, "
            "and the heads where their shapes match); a checkpoint directory or a Keras weights file of "
            "the backbone under the server's artifact root."
        ),
    )
    num_units: int = Field(
        _d("model", "num_units"),
        description="notebook backbone: base width (1..256); its five blocks have 1, 2, 4, 8, 8 times it.",
    )
    extra_layers: int = Field(
        _d("model", "extra_layers"),
        description="The SSD paper's extra feature layers extra1..extraN (0..6), each halving the resolution.",
    )
    source_layers: list[str] = Field(
        _d("model", "source_layers"),
        description="Layers the heads attach to, e.g. norm3_2 (stride 4), norm4_2 (8), norm5_2 (16), extra1; "
        "empty: the backbone's defaults.",
    )
    num_classes: int = Field(_d("model", "num_classes"), description="Foreground classes (10 digits).")


class PriorsIn(_Section):
    """Prior (default) boxes: one strides and one scales entry per source layer."""

    strides: list[int] = Field(
        _d("priors", "strides"), description="Stride in pixels of each source layer; empty: the layers' own."
    )
    scales: Literal["auto"] | list[float | list[float]] = Field(
        _d("priors", "scales"),
        description='Prior sizes in pixels per source layer: one size or a list of sizes; "auto": the SSD '
        "paper's rule between min_scale and max_scale.",
    )
    ratios: list[float] = Field(
        _d("priors", "ratios"), description="Aspect ratios w/h (0.05..20); w = s*sqrt(r), h = s/sqrt(r)."
    )
    min_scale: float = Field(_d("priors", "min_scale"), description='scales "auto": smallest size / image side.')
    max_scale: float = Field(_d("priors", "max_scale"), description='scales "auto": largest size / image side.')


class MatchingIn(_Section):
    """Assignment of ground-truth boxes to priors (SSD paper, sec. 2.2)."""

    iou_threshold: float = Field(
        _d("matching", "iou_threshold"), description="A prior is positive when its IoU with a box reaches this."
    )
    force_best: bool = Field(
        _d("matching", "force_best"), description="Also give every box its best-overlapping prior (paper)."
    )
    variances: tuple[float, float] | None = Field(
        _pair(_d("matching", "variances")) if _d("matching", "variances") else None,
        description="Offset scaling (centre, size), paper: [0.1, 0.2]; null for none.",
    )
    neg_iou: float | None = Field(
        _d("matching", "neg_iou"),
        description=(
            "Unmatched priors overlapping a box by at least this IoU are ignored, neither positive nor "
            "background (RetinaNet: 0.4); null: all are background."
        ),
    )


class LossIn(_Section):
    """The SSD loss: confidence of positives and mined negatives plus localisation."""

    alpha: float = Field(_d("loss", "alpha"), description="Weight of the localisation loss (0..1000).")
    pos_neg_ratio: float = Field(
        _d("loss", "pos_neg_ratio"), description="Hard negatives kept per positive (paper: 3)."
    )
    normalization: Literal["notebook", "paper"] = Field(
        _d("loss", "normalization"), description="notebook: each part by its own count; paper: all by N positives."
    )
    mining: Literal["batch", "image"] = Field(
        _d("loss", "mining"), description="Pick hard negatives over the whole batch or per image."
    )


class DataIn(_Section):
    """The training data: the built-in MNIST-detection generator or an imported dataset."""

    dataset: str = Field(
        _d("data", "dataset"), description="mnist (the built-in generator) or an imported dataset's id or name."
    )
    image_size: int = Field(_d("data", "image_size"), description="Square image side in pixels (32..1024).")
    resize: Literal["stretch", "letterbox"] = Field(
        _d("data", "resize"), description="Imported images to the square input: stretch (the paper) or letterbox."
    )
    min_digits: int = Field(_d("data", "min_digits"), description="Fewest digits per image.")
    max_digits: int = Field(_d("data", "max_digits"), description="Most digits per image.")
    scale_range: tuple[float, float] = Field(
        _pair(_d("data", "scale_range")), description="Digit scale range [low, high] relative to 28 px."
    )
    val_images: int = Field(_d("data", "val_images"), description="Validation images for a full evaluation.")
    train_overlap: float = Field(
        _d("data", "train_overlap"),
        description="Training images only: how much of a digit's box another digit may cover (0-1).",
    )
    train_nearest: float = Field(
        _d("data", "train_nearest"),
        description="Training images only: the share of digits resized nearest-neighbour, not bilinear (0-1).",
    )
    loader_processes: int = Field(
        _d("data", "loader_processes"),
        description="Processes that make training batches; -1: auto (none on a CPU, up to 8 with a GPU).",
    )


class AugmentIn(_Section):
    """SSD augmentation of an imported dataset's training images (the generator ignores it)."""

    photometric: bool = Field(_d("augment", "photometric"), description="Random brightness, contrast, saturation, hue.")
    expand: float = Field(_d("augment", "expand"), description="Largest zoom-out ratio (1..16); 1 turns it off.")
    crop: bool = Field(_d("augment", "crop"), description="The paper's IoU-constrained random crop.")
    flip: bool = Field(_d("augment", "flip"), description="Random horizontal flip.")
    top_down: bool = Field(
        _d("augment", "top_down"),
        description="The images look straight down (aerial, satellite, microscopy): also random vertical flips "
        "and quarter turns.",
    )


class TrainIn(_Section):
    """Optimisation schedule."""

    steps: int = Field(_d("train", "steps"), description="Training steps.")
    batch_size: int = Field(_d("train", "batch_size"), description="Images per step.")
    learning_rate: float = Field(_d("train", "learning_rate"), description="Adam learning rate (peak, if cosine).")
    schedule: Literal["constant", "cosine"] = Field(
        _d("train", "schedule"), description="Learning rate schedule: constant, or warm-up then cosine decay."
    )
    warmup_steps: int = Field(_d("train", "warmup_steps"), description="Linear warm-up steps (cosine only).")
    weight_decay: float = Field(_d("train", "weight_decay"), description="AdamW weight decay; 0 means plain Adam.")
    time_budget: float = Field(
        _d("train", "time_budget"),
        description=(
            "Minutes to train (0: off): the run measures its speed over its first steps and fits its step "
            "count (train.steps at most) and the schedule's end to finish on time."
        ),
    )
    ema_decay: float = Field(
        _d("train", "ema_decay"),
        description=(
            "Exponential moving average of the weights (e.g. 0.998): evaluated, kept as best, saved and "
            "exported in their stead; 0: off."
        ),
    )
    freeze_backbone_steps: int = Field(
        _d("train", "freeze_backbone_steps"),
        description="Train only the layers after the backbone for the first N steps (needs model.init).",
    )
    eval_every: int = Field(_d("train", "eval_every"), description="Evaluate every N steps; 0: at the end only.")
    eval_images: int = Field(_d("train", "eval_images"), description="Validation images per evaluation.")
    checkpoint_every: int = Field(
        _d("train", "checkpoint_every"), description="Save a checkpoint every N steps (and at the end); 0: end only."
    )
    early_stop_patience: int = Field(
        _d("train", "early_stop_patience"),
        description=(
            "Stop after N evaluations in a row without a new best mAP@.5 (the run succeeds; "
            "best.weights.h5 holds the best); 0: off."
        ),
    )
    precision: Literal["auto", "float32", "mixed_bfloat16", "mixed_float16"] = Field(
        _d("train", "precision"),
        description=(
            "Compute precision; auto: bf16 on CPUs with bf16 units and on GPUs of compute capability 8.0 on, "
            "float16 with loss scaling on 7.x GPUs."
        ),
    )
    xla: Literal["auto", "on", "off"] = Field(
        _d("train", "xla"),
        description="XLA-compile the training step; auto: on GPUs, off on CPUs (oneDNN's convolutions are faster).",
    )
    workers: int = Field(
        _d("train", "workers"),
        description="Processes that train the job together, each on a slice of every batch; must divide batch_size.",
    )


class DetectIn(_Section):
    """Post-processing (SSD paper defaults)."""

    score_threshold: float = Field(_d("detect", "score_threshold"), description="Drop detections scoring below this.")
    nms_iou: float = Field(_d("detect", "nms_iou"), description="Per-class NMS IoU threshold.")
    max_detections: int = Field(_d("detect", "max_detections"), description="Detections kept per image.")
    pre_nms_top_k: int = Field(_d("detect", "pre_nms_top_k"), description="Candidates per class before NMS.")


CONFIG_EXAMPLE: dict[str, Any] = {
    "preset": "notebook",
    "name": "tiny",
    "model": {"num_units": 2, "source_layers": ["norm3_2"]},
    "priors": {"strides": [4], "scales": [[8]], "ratios": [1.0]},
    "data": {"image_size": 32, "scale_range": [0.5, 1.0], "min_digits": 1, "max_digits": 2, "val_images": 8},
    "train": {"steps": 50, "batch_size": 2, "eval_images": 4},
}


class ConfigIn(BaseModel):
    """A training config (DESIGN.md): every key optional; unset keys take the preset's value."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [CONFIG_EXAMPLE]})

    preset: Literal["default", "notebook"] = Field(
        "default", description="Base recipe: default (reaches the accuracy target) or notebook (the tutorial's)."
    )
    name: str = Field(DEFAULTS["name"], description="A label for the job (1..200 characters).")
    seed: int = Field(DEFAULTS["seed"], description="Random seed of weights and training data.")
    model: ModelIn = Field(default_factory=ModelIn, description=ModelIn.__doc__)
    priors: PriorsIn = Field(default_factory=PriorsIn, description=PriorsIn.__doc__)
    matching: MatchingIn = Field(default_factory=MatchingIn, description=MatchingIn.__doc__)
    loss: LossIn = Field(default_factory=LossIn, description=LossIn.__doc__)
    data: DataIn = Field(default_factory=DataIn, description=DataIn.__doc__)
    augment: AugmentIn = Field(default_factory=AugmentIn, description=AugmentIn.__doc__)
    train: TrainIn = Field(default_factory=TrainIn, description=TrainIn.__doc__)
    detect: DetectIn = Field(default_factory=DetectIn, description=DetectIn.__doc__)


class PriorsBody(BaseModel):
    """A draft config over the default or a job's config, and a split."""

    model_config = ConfigDict(extra="forbid")

    config: ConfigIn | None = Field(
        None,
        description="A draft config (every key optional, ``preset`` too); applied over the job's config if ``job``.",
    )
    job: str | None = Field(None, description="Start from this job's config.")
    split: Literal["train", "val"] = Field("val", description="Which images.")


class ExploreIn(PriorsBody):
    """One image under a (draft) config, and optionally the priors of one cell."""

    index: int = Field(0, ge=0, le=10**9, description="Image index in the split.")
    layer: int = Field(0, ge=0, description="Source layer (0 = the first, finest) of the selected cell.")
    shape: int | None = Field(None, ge=0, description="Only this prior shape of the cell; all when null.")
    cell: tuple[int, int] | None = Field(None, description="Selected cell [row, col] of that layer; none when null.")


class CoverageIn(PriorsBody):
    """A coverage report over the first ``n`` images of a split."""

    n: int = Field(300, ge=1, le=2000, description="Images counted, from index 0.")


class SuggestIn(PriorsBody):
    """Priors fitted to the ground truth of the first ``n`` images of a split, at most ``per_cell`` a cell."""

    split: Literal["train", "val"] = Field("train", description="Which images the priors are fitted to.")
    n: int = Field(1000, ge=1, le=2000, description="Images fitted to and counted, from index 0.")
    per_cell: int | None = Field(
        None, ge=1, le=32, description="At most this many priors per cell of every layer; null: the draft's most."
    )


JOB_EXAMPLE: dict[str, Any] = {
    "id": "3f9c1a2b4d5e",
    "name": "tiny",
    "status": "running",
    "config": {"name": "tiny", "seed": 0, "train": {"steps": 50, "batch_size": 2}, "...": "every key, resolved"},
    "created_at": "2026-01-01T12:00:00Z",
    "started_at": "2026-01-01T12:00:01Z",
    "finished_at": None,
    "step": 20,
    "total_steps": 50,
    "error": None,
    "checkpoint_step": None,
    "cancel_requested": False,
    "last_metrics": {"step": 20, "pos_clf": 1.93, "neg_clf": 0.41, "loc": 0.27, "total": 2.61, "time": 1767268821.5},
    "last_eval": {"step": 20, "map50": 0.61, "map": 0.32, "val_total": 2.9},
    "tags": ["baseline"],
    "notes": "",
    "sweep_id": None,
    "best": {"map50": 0.64, "map50_step": 10, "map": 0.32, "map_step": 20},
    "duration_s": 20.4,
}


class BestOut(BaseModel):
    """A job's best validation mAP@.5 and mAP@[.5:.95] and the first step that reached each."""

    map50: float | None = None
    map50_step: int | None = None
    map: float | None = None
    map_step: int | None = None


class JobOut(BaseModel):
    """A training job as the API shows it."""

    model_config = ConfigDict(json_schema_extra={"examples": [JOB_EXAMPLE]})

    id: str = Field(description="Short hex id.", examples=["3f9c1a2b4d5e"])
    name: str = Field(description="The config's name.")
    status: JobStatus
    config: dict[str, Any] = Field(description="The full resolved config (every key, preset applied).")
    created_at: datetime
    started_at: datetime | None = Field(description="When the job last started running.")
    finished_at: datetime | None = None
    step: int = Field(description="Last step done.")
    total_steps: int = Field(description="train.steps of the config.")
    error: str | None = Field(None, description="Why a failed job failed.")
    checkpoint_step: int | None = Field(None, description="Step of the latest checkpoint; null before the first.")
    cancel_requested: bool = Field(False, description="A cancel was asked for; the job stops after its current step.")
    last_metrics: dict[str, Any] | None = Field(None, description="The latest step's metrics.")
    last_eval: dict[str, Any] | None = Field(None, description="The latest evaluation (validation loss, mAP).")
    run: dict[str, str] | None = Field(
        None,
        description="How the job computes, once it started: precision (train.precision resolved), "
        "precision_reason, xla (train.xla resolved: on or off), xla_reason, loader_processes "
        "(data.loader_processes resolved), loader_reason and device; for a multi-worker job, workers "
        "(every worker's host:port, the chief's first: the TensorFlow cluster) and placement (which nodes "
        "they run on, and why).",
    )
    waiting: str | None = Field(
        None,
        description="Why a running job has not started training yet, with how long it waits (a multi-worker "
        "Ray job waiting for the cluster to have room for its other workers); null otherwise.",
    )
    tags: list[str] = Field(default_factory=list, description="Labels to filter runs by (PATCH to change).")
    notes: str = Field("", description="Free text about the run (PATCH to change).")
    sweep_id: str | None = Field(None, description="The sweep that queued the job, if one did.")
    best: BestOut = Field(default_factory=BestOut, description="Best validation mAP so far, with its step.")
    duration_s: float = Field(0.0, description="Seconds spent running, over every run of the job (live if running).")


MAX_TAGS = 20
MAX_TAG_CHARS = 40
MAX_NOTES_CHARS = 10_000


def _printable_name(value: str, what: str, limit: int) -> str:
    value = value.strip()
    if not 1 <= len(value) <= limit:
        raise ValueError(f"{what} must have 1 to {limit} characters after trimming spaces")
    if not value.isprintable():
        raise ValueError(f"{what} must be printable (no control characters or line breaks)")
    return value


class JobPatch(BaseModel):
    """What ``PATCH /api/jobs/{id}`` changes: any of the name, the tags and the notes."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "wide priors, lr 3e-4", "tags": ["priors", "baseline"]}]},
    )

    name: str | None = Field(None, description="1..200 printable characters.")
    tags: list[str] | None = Field(
        None,
        max_length=MAX_TAGS,
        description=f"Up to {MAX_TAGS} tags of 1..{MAX_TAG_CHARS} printable characters, no commas; "
        "replaces the job's tags (duplicates dropped).",
    )
    notes: MultilineText | None = Field(
        None,
        max_length=MAX_NOTES_CHARS,
        description=f"Up to {MAX_NOTES_CHARS:,} characters; line breaks and tabs, no other control characters.",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return None if value is None else _printable_name(value, "a name", 200)

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        tags = [_printable_name(tag, "a tag", MAX_TAG_CHARS) for tag in value]
        if any("," in tag for tag in tags):  # the page edits tags as a comma-separated list
            raise ValueError("a tag cannot contain a comma")
        return list(dict.fromkeys(tags))


class MetricsOut(BaseModel):
    """A job's metric history: every step (or an even sample of them) and every evaluation."""

    job_id: str
    metrics: list[StepMetrics]
    evals: list[dict[str, Any]] = Field(
        description="Evaluations: step, val_pos_clf, val_neg_clf, val_loc, val_total, map, map50, images, time."
    )


class HealthCheckOut(BaseModel):
    """One condition that makes a run learn little (ssd.analysis.health)."""

    check: Literal[
        "no_positive_priors",
        "loss_diverged",
        "overfitting",
        "unmatched_boxes",
        "boxes_below_smallest_prior",
        "rare_classes",
        "train_val_overlap",
    ]
    status: Literal["ok", "warn", "fail", "skipped"] = Field(
        description="skipped: nothing to judge yet, or not applicable."
    )
    evidence: str = Field(description="What was found, in numbers.")
    advice: str = Field(description="What to try; empty when ok.")


class HealthOut(BaseModel):
    """A job's health checks, from its own steps, evaluations and data."""

    job_id: str
    step: int
    status: JobStatus
    checks: list[HealthCheckOut]


class ConfigSchemaOut(BaseModel):
    """What a form needs: both presets resolved, and the JSON schema with help texts."""

    defaults: dict[str, Any] = Field(description="The default preset, fully resolved.")
    notebook: dict[str, Any] = Field(description="The notebook preset, fully resolved.")
    json_schema: dict[str, Any] = Field(description="JSON schema of the POST /api/jobs body.")


class Health(BaseModel):
    """Liveness."""

    status: Literal["ok"] = "ok"


class PlanChoiceOut(BaseModel):
    """One key the data-fitted recipe chose (ssd.recipe)."""

    key: str
    value: Any
    reason: str
    text: str = Field(description="key = value: reason")


class PlanCoverageOut(BaseModel):
    """How the draft's priors cover the first training images' boxes at its input size."""

    images: int
    boxes: int
    unmatched_share: float = Field(description="Boxes with no prior at the IoU threshold: never learned.")
    below_smallest_prior_share: float = Field(description="Boxes (sqrt of area) smaller than the smallest prior.")
    smallest_prior: float
    iou_threshold: float


class PlanMemoryOut(BaseModel):
    estimate_gib: float
    limit_gib: float


class PlanTimeOut(BaseModel):
    """Training time at the median images/s of this server's last finished runs of the same
    backbone, width, input size and precision; null without such a run."""

    seconds: float | None
    images: int
    runs: int
    images_per_sec: float | None
    budget_minutes: float | None = Field(
        None, description="train.time_budget: the run fits its steps to end then (seconds is train.steps' time)."
    )


class PlanWarningOut(BaseModel):
    field: str
    message: str


class PlanOut(BaseModel):
    """What a draft config will do (POST /api/config/plan)."""

    config: dict[str, Any] = Field(description="The config the job would run: the draft with the recipe's choices.")
    choices: list[PlanChoiceOut]
    coverage: PlanCoverageOut
    memory: PlanMemoryOut
    time: PlanTimeOut
    warnings: list[PlanWarningOut]
