"""What the config needs to know about each base network, without building one (no TensorFlow).

Three backbones (``model.backbone``):

- ``notebook``: the tutorial notebook's VGG-like five-block network (:func:`ssd.model.build_base_network`),
  layers ``conv{b}_{i}`` / ``norm{b}_{i}``; the default.
- ``mobilenet_v2`` and ``resnet50``: ``keras.applications`` networks without their classifier,
  optionally with ImageNet weights (``model.weights``). Their source layers are named as Keras
  names them; only the layers listed here can carry heads (each at the end of a resolution).

Every backbone can grow the SSD paper's extra feature layers (``model.extra_layers``, named
``extra1``, ``extra2``, ...): each halves the resolution of the one before, starting from the
backbone's last layer. A layer of stride ``s`` has a ``ceil(image_size / s)`` feature map
('same' padding), which ``tests/ssd/test_backbones.py`` checks against the built networks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

BackboneName = Literal["notebook", "mobilenet_v2", "resnet50"]
BACKBONE_NAMES: tuple[BackboneName, ...] = ("notebook", "mobilenet_v2", "resnet50")
MAX_EXTRA_LAYERS = 6
EXTRA_PREFIX = "extra"

# The notebook's base network: block 1 has three convs, blocks 2-5 two.
NOTEBOOK_LAYERS: tuple[str, ...] = tuple(
    f"{kind}{b}_{i}" for b in range(1, 6) for i in range(1, (4 if b == 1 else 3)) for kind in ("conv", "norm")
)


def notebook_stride(name: str) -> int:
    """Stride of ``conv{b}_{i}`` / ``norm{b}_{i}``: blocks 2-5 halve the resolution in their second conv."""
    block, index = int(name[-3]), int(name[-1])
    halvings = max(block - 2, 0) + (1 if block >= 2 and index >= 2 else 0)
    return int(2**halvings)


@dataclass(frozen=True)
class Backbone:
    """A base network as the config sees it.

    Attributes:
        layers: source-layer name -> stride in pixels, in network order.
        last_stride: stride of the network's last layer, where extra layers start.
        default_layers: the source layers used when a config names none (extras included).
        default_extra_layers: extra layers added when a config does not say.
        default_ratios: prior aspect ratios (w/h) used when a config gives neither ratios nor scales.
        pretrained: whether ``model.weights = "imagenet"`` exists for it.
        channels: source-layer name -> channels (keras.applications backbones; the notebook's
            follow ``model.num_units``).
        params: weights of the network without its classifier (keras.applications backbones).
        conv_values: conv and depthwise-conv output values per input pixel (sum of ``h * w * c``
            over those layers divided by the input's ``S * S``), for the server's memory estimate.
    """

    layers: dict[str, int]
    last_stride: int
    default_layers: tuple[str, ...]
    default_extra_layers: int
    default_ratios: tuple[float, ...]
    pretrained: bool
    channels: dict[str, int] = field(default_factory=dict)
    params: int = 0
    conv_values: float = 0.0


BACKBONES: dict[str, Backbone] = {
    "notebook": Backbone(
        layers={name: notebook_stride(name) for name in NOTEBOOK_LAYERS},
        last_stride=16,
        default_layers=("norm3_2", "norm4_2", "norm5_2"),
        default_extra_layers=0,
        default_ratios=(0.4, 0.8, 1.2),
        pretrained=False,
    ),
    # MobileNetV2's inverted residual blocks: the expansion ReLU of the first block at each new
    # resolution (as SSDLite taps block_13_expand_relu), and the final 1280-channel out_relu.
    "mobilenet_v2": Backbone(
        layers={
            "block_1_expand_relu": 2,
            "block_3_expand_relu": 4,
            "block_6_expand_relu": 8,
            "block_13_expand_relu": 16,
            "out_relu": 32,
        },
        last_stride=32,
        default_layers=("block_13_expand_relu", "out_relu", "extra1", "extra2", "extra3", "extra4"),
        default_extra_layers=4,
        default_ratios=(0.5, 1.0, 2.0),
        pretrained=True,
        # tests/ssd/test_backbones.py counts these on the built network.
        channels={
            "block_1_expand_relu": 96,
            "block_3_expand_relu": 144,
            "block_6_expand_relu": 192,
            "block_13_expand_relu": 576,
            "out_relu": 1280,
        },
        params=2_257_984,
        conv_values=133.094,
    ),
    # ResNet-50: the output of the last block of each stage.
    "resnet50": Backbone(
        layers={
            "conv1_relu": 2,
            "conv2_block3_out": 4,
            "conv3_block4_out": 8,
            "conv4_block6_out": 16,
            "conv5_block3_out": 32,
        },
        last_stride=32,
        default_layers=("conv3_block4_out", "conv4_block6_out", "conv5_block3_out", "extra1", "extra2", "extra3"),
        default_extra_layers=3,
        default_ratios=(0.5, 1.0, 2.0),
        pretrained=True,
        channels={
            "conv1_relu": 64,
            "conv2_block3_out": 256,
            "conv3_block4_out": 512,
            "conv4_block6_out": 1024,
            "conv5_block3_out": 2048,
        },
        params=23_587_712,
        conv_values=211.0,
    ),
}
# Channels of the extra layers after a keras.applications backbone (the paper: 256 or 512).
EXTRA_WIDTH = 256


def extra_name(index: int) -> str:
    """The name of extra layer ``index`` (1-based)."""
    return f"{EXTRA_PREFIX}{index}"


def extra_index(name: str) -> int | None:
    """1-based index of an extra layer's name (``extra3`` -> 3), None for any other name."""
    rest = name.removeprefix(EXTRA_PREFIX)
    if rest == name or not rest.isdigit() or rest.startswith("0"):
        return None
    return int(rest)


def layer_names(backbone: str, extra_layers: int) -> tuple[str, ...]:
    """Every layer of a backbone that can carry a head, extras included, in network order."""
    return tuple(BACKBONES[backbone].layers) + tuple(extra_name(i) for i in range(1, extra_layers + 1))


def stride_of(backbone: str, name: str) -> int:
    """Stride in pixels of a source layer; ``KeyError`` for a name the backbone does not have.

    Extra layer ``k`` has stride ``last_stride * 2 ** k`` (it does not check ``extra_layers``).
    """
    spec = BACKBONES[backbone]
    if name in spec.layers:
        return spec.layers[name]
    k = extra_index(name)
    if k is None:
        raise KeyError(name)
    return spec.last_stride * 2**k
