"""Before you start: what a draft config will do, from what the server already knows.

For the new-job form's panel (``POST /api/config/plan``): the recipe's choices for the chosen
data (:mod:`ssd.recipe`), how the priors cover the training boxes at this input size
(:mod:`ssd.coverage`), the memory estimate against the server's limit
(:func:`app.services.limits.memory_estimate`), the expected training time from the images/s of
this machine's finished runs of the same backbone and input size, and the warnings that can be
known before training. Nothing is queued; an invalid draft is an :class:`~app.domain.Invalid`.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from typing import Any

import numpy as np

from app.services import configs
from app.services.jobs import JobService
from app.services.limits import GIB, memory_estimate, prior_count
from ssd.analysis.health import RARE_CLASS_BOXES, rare_classes
from ssd.config import from_dict
from ssd.suggest import measure

PLAN_IMAGES = 500  # training images whose boxes the coverage reads
SPEED_RUNS = 5  # the most recent finished runs whose speed is taken


def plan(data: Mapping[str, Any], jobs: JobService) -> dict[str, Any]:
    """The plan of a draft config (every key optional, as ``POST /api/jobs`` takes it).

    Raises:
        Invalid: the draft is no valid config, or names no dataset (``loc`` ``body`` + field).
    """
    settings = jobs.settings
    fitted, choices, source = configs.fit(data, settings)
    config = from_dict(fitted)  # fit_recipe checked it
    warnings: list[dict[str, str]] = []
    n = source.count("train", PLAN_IMAGES)
    boxes = source.boxes(config, "train", n)
    report = measure(boxes, config.priors, config)
    num_gt = max(report.num_gt, 1)
    unmatched = 1.0 - report.matched / num_gt
    smallest = float(min(min(group) for group in config.priors.scales))
    sizes = report.size  # sqrt(area) of each box
    below = float(np.mean(sizes < smallest)) if sizes.size else 0.0
    # Small boxes matter when they match no prior (a thin box may still match a taller prior).
    lost = float(np.mean((sizes < smallest) & ~report.is_matched)) if sizes.size else 0.0
    cover = {
        "images": n,
        "boxes": report.num_gt,
        "unmatched_share": round(unmatched, 4),
        "below_smallest_prior_share": round(below, 4),
        "smallest_prior": smallest,
        "iou_threshold": config.matching.iou_threshold,
    }
    if report.num_gt and unmatched > 0.05:
        warnings.append(
            {
                "field": "priors",
                "message": f"{unmatched:.1%} of the training boxes have no prior at IoU "
                f"{config.matching.iou_threshold:g}: they are never learned (fit the priors, or open the explorer)",
            }
        )
    if report.num_gt and lost > 0.02:
        warnings.append(
            {
                "field": "data.image_size",
                "message": f"{lost:.1%} of the training boxes are smaller than the smallest prior ({smallest:g} px) "
                f"at {config.data.image_size} px and match none: raise data.image_size or add smaller scales",
            }
        )
    _, rare = rare_classes(boxes, config.model.num_classes)
    if report.num_gt and rare:
        names = source.class_names
        shown = ", ".join(str(names[c]) if c < len(names) else str(c) for c in rare[:6])
        warnings.append(
            {
                "field": "data.dataset",
                "message": f"{len(rare)} classes have fewer than {RARE_CLASS_BOXES} boxes in {n} training images "
                f"({shown}{', ...' if len(rare) > 6 else ''}): they are hardly learned",
            }
        )
    estimate = memory_estimate(config, source.max_boxes(config))
    memory = {"estimate_gib": round(estimate / GIB, 2), "limit_gib": settings.max_memory_gib}
    if estimate / GIB > settings.max_memory_gib:
        warnings.append(
            {
                "field": "train.batch_size",
                "message": f"needs about {estimate / GIB:.1f} GiB, over this server's limit of "
                f"{settings.max_memory_gib:g} GiB: the server will refuse it "
                "(lower train.batch_size or data.image_size)",
            }
        )
    priors = prior_count(config)
    if priors > settings.max_priors:
        warnings.append(
            {"field": "priors", "message": f"{priors} priors exceed this server's limit of {settings.max_priors}"}
        )
    resolved = config.to_dict()
    return {
        "config": resolved,
        "choices": [c.to_dict() for c in choices],
        "coverage": cover,
        "memory": memory,
        "time": expected_time(resolved, jobs),
        "warnings": warnings,
    }


def expected_time(config: dict[str, Any], jobs: JobService) -> dict[str, Any]:
    """The training time of ``config`` at the median images/s of this server's last finished
    runs of the same backbone, input size and precision (training steps only, not evaluations)."""
    model, data, train = config["model"], config["data"], config["train"]
    speeds = []
    for job in jobs.list(status="succeeded", limit=200):
        c = job.config
        same = (
            c.get("model", {}).get("backbone") == model["backbone"]
            and c.get("model", {}).get("num_units") == model["num_units"]
            and c.get("data", {}).get("image_size") == data["image_size"]
            and c.get("train", {}).get("precision") == train["precision"]
        )
        rate = (job.last_metrics or {}).get("images_per_sec")
        if same and isinstance(rate, int | float) and rate > 0:
            speeds.append(float(rate))
        if len(speeds) == SPEED_RUNS:
            break
    images = train["steps"] * train["batch_size"]
    budget = float(train.get("time_budget") or 0.0) or None  # the run fits its steps to it
    if not speeds:
        return {"seconds": None, "images": images, "runs": 0, "images_per_sec": None, "budget_minutes": budget}
    rate = statistics.median(speeds)
    seconds = round(images / rate, 1)
    return {
        "seconds": seconds,
        "images": images,
        "runs": len(speeds),
        "images_per_sec": round(rate, 1),
        "budget_minutes": budget,
    }
