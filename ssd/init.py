"""Where a run's weights start (``model.init``), and the report of what was loaded (TensorFlow).

``model.init`` names one of (:func:`ssd.checkpoint.init_kind`):

- ``none``: every layer starts from Keras' random initialisers (the default);
- ``imagenet``: Keras' ImageNet weights of a keras.applications backbone (``model.weights``'
  value, kept as its alias), fetched by Keras or found in ``~/.keras/models``;
- a Keras weights file of such a backbone (the ``*_no_top.h5`` file Keras downloads): for
  machines without internet, download it once and point to it;
- a checkpoint directory (a run's ``config.json`` and weights), or ``job:<id>``: a dashboard
  job's run directory under the artifact root. Its best weights are read (the last where it
  kept no best).

From a run, the backbone's layers (and its extra layers) are always loaded, and a layer whose
weights have another shape there is an error: the backbones differ. The heads
(``<source layer>_clf`` / ``_loc``) are loaded where their shapes match; one that differs (another
class count, other priors per cell) or that the source has not starts fresh, and the
:class:`InitReport` says so. Input sizes may differ: convolution weights do not depend on them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import keras

from ssd.backbones import extra_index
from ssd.checkpoint import init_kind, init_source, read_best, read_config, weights_path
from ssd.config import Config, ConfigError
from ssd.model import build_ssd

HEAD_SUFFIXES = ("_clf", "_loc")


def is_head(name: str) -> bool:
    """Whether layer ``name`` is a multibox head's conv (``norm3_2_clf``, ``extra1_loc``)."""
    return name.endswith(HEAD_SUFFIXES)


def is_backbone(name: str) -> bool:
    """Whether layer ``name`` belongs to the backbone itself: neither a head nor an extra layer
    (``extra2``, ``extra2_reduce``, ``extra2_conv``), which follow the backbone."""
    return not is_head(name) and extra_index(name.split("_")[0]) is None


def weighted_layers(model: keras.Model) -> dict[str, keras.layers.Layer]:
    """The layers of ``model`` that hold weights, by name, in network order."""
    return {layer.name: layer for layer in model.layers if layer.weights}


def backbone_variables(model: keras.Model) -> list[keras.Variable]:
    """The trainable variables of the backbone's layers (:func:`is_backbone`)."""
    return [v for layer in model.layers if is_backbone(layer.name) for v in layer.trainable_weights]


@dataclass(frozen=True)
class InitReport:
    """What ``model.init`` gave a fresh run.

    Attributes:
        init: the config's value.
        source: what was read, in words (a file path, Keras' ImageNet weights, ...).
        loaded: names of the layers whose weights came from it, in network order.
        new: ``(layer, why it starts fresh)`` for every other layer with weights.
    """

    init: str
    source: str
    loaded: tuple[str, ...]
    new: tuple[tuple[str, str], ...]

    def summary(self) -> str:
        """One line: the source and the counts."""
        if self.init == "none":
            return "none: every layer starts from random weights"
        return f"{self.init}: {len(self.loaded)} layers loaded from {self.source}, {len(self.new)} new"

    def run_info(self) -> dict[str, str]:
        """``run.json``'s keys: ``init`` (the summary), ``init_loaded`` and ``init_new``."""
        if self.init == "none":
            return {"init": self.summary()}
        new = "; ".join(f"{name} ({why})" for name, why in self.new)
        return {"init": self.summary(), "init_loaded": ", ".join(self.loaded) or "none", "init_new": new or "none"}


def apply_init(model: keras.Model, config: Config, data_dir: str | Path) -> InitReport:
    """Load ``config.model.init`` into ``model`` (built by :func:`ssd.model.build_ssd` with
    ``pretrained=True``, which already read ImageNet weights or a backbone file); report it.

    Raises:
        ConfigError: on ``model.init``: no such run or file, another backbone, a backbone layer
            of another shape, or weights that cannot be read.
    """
    init = config.model.init
    kind = init_kind(init)
    layers = weighted_layers(model)
    if kind == "none":
        return InitReport(init, "random initialisers", (), tuple((name, "random") for name in layers))
    if kind == "file" and config.model.backbone == "notebook":
        raise ConfigError(
            "model.init",
            "a weights file starts a mobilenet_v2 or resnet50 backbone; the notebook backbone starts from a "
            "run: job:<id> or a checkpoint directory",
        )
    if kind in ("imagenet", "file"):
        source = f"Keras' ImageNet weights of {config.model.backbone}" if kind == "imagenet" else init
        loaded = tuple(name for name in layers if is_backbone(name))
        new = tuple((name, f"not in {init}") for name in layers if not is_backbone(name))
        return InitReport(init, source, loaded, new)
    directory = init_source(init, data_dir)
    assert directory is not None  # a job or a checkpoint directory
    theirs, path = _source_model(config, init, directory)
    loaded, new = copy_layers(layers, weighted_layers(theirs), init)
    best = read_best(directory) if path.name != "model.weights.h5" else None
    which = f"best weights, step {best['step']}" if best else "last weights"
    return InitReport(init, f"{path} ({which})", loaded, new)


def _source_model(config: Config, init: str, directory: Path) -> tuple[keras.Model, Path]:
    """The source run's model with its best weights (else its last), and the file read."""
    try:
        source_config = read_config(directory)
    except (OSError, ValueError) as exc:
        raise ConfigError("model.init", f"the run in {init} cannot be read: {exc}") from None
    if source_config.model.backbone != config.model.backbone:
        raise ConfigError(
            "model.init",
            f"{init} trained a {source_config.model.backbone} backbone, this run has "
            f"{config.model.backbone}: the backbone must match",
        )
    path = weights_path(directory, "best")
    model = build_ssd(source_config.model, source_config.priors, None, pretrained=False)
    try:
        model.load_weights(str(path))
    except Exception as exc:  # h5py and Keras raise many types for a bad file
        raise ConfigError("model.init", f"the weights {path} cannot be read: {exc}") from None
    return model, path


def _shapes(layer: keras.layers.Layer) -> list[tuple[int, ...]]:
    return [tuple(int(d) for d in w.shape) for w in layer.weights]


def copy_layers(
    ours: dict[str, keras.layers.Layer], theirs: dict[str, keras.layers.Layer], init: str
) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """Copy weights layer by layer, by name: ``(loaded, new)`` as :class:`InitReport` has them.

    Raises:
        ConfigError: a backbone or extra layer has weights of another shape in ``theirs`` (the
            networks differ, e.g. another ``model.num_units``), or no layer at all matched.
    """
    loaded: list[str] = []
    new: list[tuple[str, str]] = []
    for name, layer in ours.items():
        source = theirs.get(name)
        if source is None:
            new.append((name, f"not in {init}"))
            continue
        mine, yours = _shapes(layer), _shapes(source)
        if mine != yours:
            if not is_head(name):
                raise ConfigError(
                    "model.init",
                    f"layer {name} has weights {_show(mine)} here but {_show(yours)} in {init}: the "
                    "networks differ (e.g. model.num_units); only the heads may differ",
                )
            new.append((name, f"shape {_show(mine)} here, {_show(yours)} in {init}"))
            continue
        layer.set_weights(source.get_weights())
        loaded.append(name)
    if not any(is_backbone(name) for name in loaded):
        raise ConfigError("model.init", f"{init} shares no backbone layer with this network")
    return tuple(loaded), tuple(new)


def _show(shapes: Iterable[tuple[int, ...]]) -> str:
    return " ".join("[" + ", ".join(map(str, s)) + "]" for s in shapes)
