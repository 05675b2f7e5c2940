"""The probes' settings: the linear probes over the (block, timestep) grid (``GridProbe``), the MLP head
(``MLPProbe``), fusing the top pairs (``fuse_pairs``) and the probe run (``run_probe``). The classes and
functions of ``diffprobe.probe`` take these as their parameters' defaults."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt
from pydantic.dataclasses import dataclass

from ..base import Fraction, NonEmptyTupleOf, Precision, Settings

HEADS = ("linear", "mlp")
WeightDecays = NonEmptyTupleOf[NonNegativeFloat]  # a grid: each tried, the best kept


@dataclass(frozen=True)
class GridProbeConfig(Settings):
    """``GridProbe``'s parameters. Defaults chosen on NDSB val accuracy (121 classes, 17k train images, 63 pairs
    of three U-Nets): without whitening Adam needed 80 epochs to reach 52.2% (best pair); whitened, 10-20 epochs
    reach 55.5-55.7%."""

    epochs: PositiveInt = 20
    lr: PositiveFloat = 3e-2
    batch_size: PositiveInt = 256
    weight_decays: WeightDecays = (1e-5, 1e-4, 1e-3)
    class_balanced: bool = False
    patience: NonNegativeInt = 15
    seed: NonNegativeInt = 0
    precision: Precision = "auto"
    whiten: PositiveFloat | None = 0.1


@dataclass(frozen=True)
class MLPProbeConfig(Settings):
    """``MLPProbe``'s parameters. Defaults chosen on NDSB val (121 classes, 17k train images;
    experiments/accuracy_levers/accuracy_levers.py)."""

    hidden: NonEmptyTupleOf[PositiveInt] = (1024,)
    dropout: NonEmptyTupleOf[Fraction] = (0.5,)
    weight_decays: WeightDecays = (0.05,)
    epochs: PositiveInt = 40
    lr: PositiveFloat = 1e-3
    batch_size: PositiveInt = 256
    label_smoothing: Fraction = 0.0
    input_dropout: Fraction = 0.1
    seed: NonNegativeInt = 0
    ensemble: PositiveInt = 1
    precision: Precision = "auto"


@dataclass(frozen=True)
class AttentiveProbeConfig(Settings):
    """``AttentiveProbe``'s parameters: learned queries and attention heads over a map's tokens, the dropout
    before its classifier and its AdamW schedule. Measured on NDSB val: experiments/attentive_probe/attentive_probe.py."""

    n_queries: PositiveInt = 4
    n_heads: PositiveInt = 4
    dropout: Fraction = 0.3
    epochs: PositiveInt = 30
    lr: PositiveFloat = 1e-3
    weight_decay: NonNegativeFloat = 0.05
    batch_size: PositiveInt = 256
    seed: NonNegativeInt = 0
    hidden: NonNegativeInt = 0  # > 0: a GELU layer of this width before the classes
    precision: Precision = "auto"


@dataclass(frozen=True)
class FusionConfig(Settings):
    """``fuse_pairs``: the numbers of top pairs tried (k chosen on val), the head, whether the objects'
    size and shape metadata is appended to the input (and its weight in an MLP head), and whether the chosen
    MLP head is refit on train + val."""

    ks: NonEmptyTupleOf[PositiveInt] = (2, 3, 4, 6, 8)
    head: Literal[HEADS] = "linear"
    metadata: bool = False
    # The MLP head's weight on the standardised metadata columns: 33 measurements beside thousands of feature
    # dimensions weigh little otherwise. NDSB val, 12 pairs, mean of 2 seeds (experiments/shape_metadata/shape_metadata.py):
    # 68.6% at 1, 69.3% at 2 and 4, 69.6% at 8; 4 was chosen on a first run (69.7% at 4, 69.6% at 8): the
    # gap between 4 and 8 either way is within the seeds' spread.
    metadata_weight: PositiveFloat = 4.0
    refit: bool = False


@dataclass(frozen=True)
class ProbeRunConfig(Settings):
    """``run_probe``: RAM for features at a time (larger stores are probed in chunks of pairs)."""

    max_gb: PositiveFloat = 4.0
