"""Training configs as the server accepts them: :func:`ssd.config.from_dict` plus the server's limits.

Every place that turns client data into a :class:`ssd.config.Config` (job submission, a job's
stored config, the prior explorer's draft over a job's config) goes through :func:`resolve`, so
a value is refused the same way everywhere: an :class:`~app.domain.Invalid` whose ``loc`` is
where the config sits in the request followed by the dotted field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.domain import Invalid
from app.services.limits import check_limits
from app.settings import Settings
from ssd.checkpoint import check_init
from ssd.config import Config, ConfigError, from_dict
from ssd.datasets.resolve import apply_dataset
from ssd.datasets.resolve import resolve as resolve_dataset
from ssd.datasets.source import DataSource
from ssd.recipe import Choice, fit_recipe


def resolve(data: Mapping[str, Any], settings: Settings, *, loc: tuple[str, ...] = ("body",)) -> Config:
    """The config of ``data`` within the server's limits, bound to its dataset (``data.dataset``
    becomes the dataset's id, ``model.num_classes`` its class count: :func:`apply_dataset`).

    Raises:
        Invalid: a bad value or a config over a limit; ``loc`` + the field's dotted path.
    """
    try:
        config = from_dict(apply_dataset(data, settings.artifact_root))
        source = resolve_dataset(config, settings.artifact_root)
        check_limits(
            config,
            max_priors=settings.max_priors,
            max_memory_gib=settings.max_memory_gib,
            max_train_images=settings.max_train_images,
            max_objects=source.max_boxes(config),
        )
    except ConfigError as exc:
        raise Invalid((*loc, *exc.field.split(".")), exc.message) from exc
    return config


def check_start(config: Config, settings: Settings, *, loc: tuple[str, ...] = ("body",)) -> None:
    """Refuse, before a job is queued, a ``model.init`` it could not start from: an unknown job or
    one without a checkpoint, another backbone, a path outside the artifact root
    (:func:`ssd.checkpoint.check_init`). Only at submission: a stored job's config is not checked
    again once its source is gone.

    Raises:
        Invalid: at ``loc`` + ``model.init``.
    """
    try:
        check_init(config, settings.artifact_root, within=settings.artifact_root)
    except ConfigError as exc:
        raise Invalid((*loc, *exc.field.split(".")), exc.message) from exc


def resolve_fitted(
    data: Mapping[str, Any], settings: Settings, *, loc: tuple[str, ...] = ("body",)
) -> tuple[Config, list[Choice]]:
    """:func:`resolve` after the data-fitted recipe (:func:`ssd.recipe.fit_recipe`) chose the keys
    ``data`` leaves unset for its imported dataset; the choices made. For a new job, not a stored one.

    Raises:
        Invalid: as :func:`resolve`.
    """
    fitted, choices, _ = fit(data, settings, loc=loc)
    return resolve(fitted, settings, loc=loc), choices


def fit(
    data: Mapping[str, Any], settings: Settings, *, loc: tuple[str, ...] = ("body",)
) -> tuple[dict[str, Any], list[Choice], DataSource]:
    """``data`` bound to its dataset with the recipe's choices (:func:`ssd.recipe.fit_recipe`),
    the choices, and the dataset; the server's limits are not checked (a plan shows them).

    Raises:
        Invalid: a bad value, or no such dataset; ``loc`` + the field's dotted path.
    """
    try:
        bound = apply_dataset(data, settings.artifact_root)
        source = resolve_dataset(from_dict(bound), settings.artifact_root)
        fitted, choices = fit_recipe(bound, source)
    except ConfigError as exc:
        raise Invalid((*loc, *exc.field.split(".")), exc.message) from exc
    return fitted, choices, source
