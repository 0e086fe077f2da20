"""Which compute precision a run uses: ``train.precision = "auto"`` decided by the hardware.

- On a GPU of compute capability 8.0 or more (Ampere on: bf16 tensor cores as fast as float16):
  ``mixed_bfloat16``, whose float32 exponent range needs no loss scaling.
- On a GPU of compute capability 7.x (Volta, Turing: float16 tensor cores only): ``mixed_float16``,
  with dynamic loss scaling (:func:`ssd.optim.make_optimizer` wraps the optimizer in Keras'
  ``LossScaleOptimizer``).
- On a CPU with bf16 units (Intel AMX-BF16, or AVX512-BF16 as on AMD Zen 4): ``mixed_bfloat16``,
  where it was measured faster than float32 (``python -m benchmarks.models``, docs/guide/models.md):
  the notebook network 2.1x and resnet50 1.5x on an AMD EPYC. Not for ``mobilenet_v2``: its
  depthwise convolutions and Keras' unfused BatchNorm made bf16 0.70x float32 there, so it stays
  in float32 (:data:`CPU_BF16_SLOWER`).
- Otherwise ``float32``: bf16 emulated without those units is slower than float32.

Whether XLA compiles the training step (``train.xla = "auto"``, :func:`choose_xla`): on GPUs, where
it fuses the BatchNorm, ReLU and loss elementwise work into few kernels; not on CPUs, where its
convolutions are not oneDNN's and the step ran slower (docs/performance.md); not with several workers,
whose collectives run outside XLA.

How many processes make training batches (``data.loader_processes = -1``, auto,
:func:`choose_loader`): none on a CPU, whose cores the training step uses (a thread of the
input pipeline that takes a core stalls the step's other thread at its next barrier); on a GPU,
up to :data:`MAX_AUTO_LOADERS`, leaving two cores to the step and the pipeline.

TensorFlow-free: the GPU is described by the caller (:class:`Gpu`), the CPU read from
``/proc/cpuinfo``, so the server can say what a job will use without importing TensorFlow.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Policy = Literal["float32", "mixed_bfloat16", "mixed_float16"]
Requested = Literal["auto", "float32", "mixed_bfloat16", "mixed_float16"]
PRECISIONS: tuple[Requested, ...] = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
XlaRequested = Literal["auto", "on", "off"]
XLA_MODES: tuple[XlaRequested, ...] = ("auto", "on", "off")
MAX_AUTO_LOADERS = 8
# /proc/cpuinfo flag -> how people write it, best first.
BF16_FLAGS = {"amx_bf16": "AMX-BF16", "avx512_bf16": "AVX512-BF16"}
MIN_FLOAT16_CAPABILITY = (7, 0)  # Volta: the first tensor cores
MIN_BF16_CAPABILITY = (8, 0)  # Ampere: the first bf16 tensor cores
# Backbones whose training step ran slower in bf16 than in float32 on a CPU with bf16 units.
CPU_BF16_SLOWER = frozenset({"mobilenet_v2"})


@dataclass(frozen=True)
class Gpu:
    """The GPU a run would use: its name and CUDA compute capability ``(major, minor)``."""

    name: str
    capability: tuple[int, int]


@dataclass(frozen=True)
class Choice:
    """The policy a run uses and why, e.g. ``mixed_bfloat16`` because "auto: the CPU has AMX-BF16"."""

    policy: Policy
    reason: str

    def describe(self) -> str:
        """One line for the job page and ``ssdboard train``."""
        return f"{self.policy} ({self.reason})"


@functools.lru_cache(maxsize=1)
def cpu_info(path: str = "/proc/cpuinfo") -> tuple[str, frozenset[str]]:
    """``(model name, flags)`` of the first CPU; ``("unknown CPU", {})`` where nothing can be read."""
    try:
        text = Path(path).read_text()
    except OSError:
        return "unknown CPU", frozenset()
    model, flags = "unknown CPU", frozenset[str]()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and model == "unknown CPU":
            model = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = frozenset(value.split())
    return model, flags


def cpu_bf16(flags: frozenset[str] | None = None) -> str | None:
    """The CPU's bf16 unit as people name it (``"AMX-BF16"``, ``"AVX512-BF16"``), or None."""
    flags = cpu_info()[1] if flags is None else flags
    return next((name for flag, name in BF16_FLAGS.items() if flag in flags), None)


def choose(
    requested: Requested,
    gpu: Gpu | None = None,
    *,
    backbone: str = "notebook",
    flags: frozenset[str] | None = None,
    cpu: str | None = None,
) -> Choice:
    """The policy for ``train.precision`` on this hardware (``gpu``: the one the run uses, or None)
    for a model of ``backbone``."""
    if requested != "auto":
        return Choice(requested, "set in the config")
    if gpu is not None:
        if gpu.capability >= MIN_BF16_CAPABILITY:
            return Choice("mixed_bfloat16", f"auto: {gpu.name} has bf16 tensor cores; no loss scaling needed")
        if gpu.capability >= MIN_FLOAT16_CAPABILITY:
            return Choice("mixed_float16", f"auto: {gpu.name} has tensor cores; loss scaling on")
        major, minor = gpu.capability
        return Choice("float32", f"auto: {gpu.name} (compute capability {major}.{minor}) has no tensor cores")
    cpu = cpu if cpu is not None else cpu_info()[0]
    unit = cpu_bf16(flags)
    if unit is not None and backbone in CPU_BF16_SLOWER:
        return Choice("float32", f"auto: {cpu} has {unit}, but {backbone} measured slower in bf16 than float32")
    if unit is not None:
        return Choice("mixed_bfloat16", f"auto: {cpu} has {unit}")
    return Choice("float32", f"auto: {cpu} has no bf16 units")


@dataclass(frozen=True)
class XlaChoice:
    """Whether XLA compiles the training step, and why."""

    enabled: bool
    reason: str

    @property
    def setting(self) -> Literal["on", "off"]:
        """``"on"`` or ``"off"``, as ``train.xla`` and ``run.json`` write it."""
        return "on" if self.enabled else "off"

    def describe(self) -> str:
        """One line for the job page and ``ssdboard train``: ``off (auto: on CPUs ...)``."""
        return f"{self.setting} ({self.reason})"


def choose_xla(requested: XlaRequested, gpu: Gpu | None = None, *, workers: int = 1) -> XlaChoice:
    """``train.xla`` on this hardware (``gpu``: the one the run uses, or None)."""
    if requested != "auto":
        return XlaChoice(requested == "on", "set in the config")
    if workers > 1:
        return XlaChoice(False, "auto: the workers' collectives run outside XLA")
    if gpu is not None:
        return XlaChoice(True, f"auto: on {gpu.name}, XLA fuses the elementwise work into few kernels")
    return XlaChoice(False, "auto: on CPUs the oneDNN convolutions outside XLA are faster")


@dataclass(frozen=True)
class LoaderChoice:
    """How many processes make training batches (0: the pipeline's own thread), and why."""

    processes: int
    reason: str

    def describe(self) -> str:
        """One line for ``ssdboard train``: ``2 (set in the config)``."""
        return f"{self.processes} ({self.reason})"


def choose_loader(requested: int, gpu: Gpu | None = None, *, cpus: int | None = None) -> LoaderChoice:
    """``data.loader_processes`` (-1: auto) on this hardware; ``cpus`` defaults to this machine's."""
    if requested >= 0:
        return LoaderChoice(requested, "set in the config")
    if gpu is None:
        return LoaderChoice(0, "auto: on a CPU the training step uses every core")
    cpus = cpus if cpus is not None else (os.cpu_count() or 1)
    n = min(MAX_AUTO_LOADERS, max(1, cpus - 2))
    return LoaderChoice(n, f"auto: {n} of {cpus} CPU cores make batches for {gpu.name}")
