"""The probes' settings: the linear probes over the (block, timestep) grid (``GridProbe``), the MLP head
(``MLPProbe``), fusing the top pairs (``fuse_pairs``) and the probe run (``run_probe``). The classes and
functions of ``diffprobe.probe`` take these as their parameters' defaults."""

from __future__ import annotations

from dataclasses import dataclass

HEADS = ("linear", "mlp")


@dataclass(frozen=True)
class GridProbeConfig:
    """``GridProbe``'s parameters. Defaults chosen on NDSB val accuracy (121 classes, 17k train images, 63 pairs
    of three U-Nets): without whitening Adam needed 80 epochs to reach 52.2% (best pair); whitened, 10-20 epochs
    reach 55.5-55.7%."""

    epochs: int = 20
    lr: float = 3e-2
    batch_size: int = 256
    weight_decays: tuple[float, ...] = (1e-5, 1e-4, 1e-3)
    class_balanced: bool = False
    patience: int = 15
    seed: int = 0
    precision: str = "auto"
    whiten: float | None = 0.1


@dataclass(frozen=True)
class MLPProbeConfig:
    """``MLPProbe``'s parameters. Defaults chosen on NDSB val (121 classes, 17k train images;
    experiments/accuracy_levers/accuracy_levers.py)."""

    hidden: tuple[int, ...] = (1024,)
    dropout: tuple[float, ...] = (0.5,)
    weight_decays: tuple[float, ...] = (0.05,)
    epochs: int = 40
    lr: float = 1e-3
    batch_size: int = 256
    label_smoothing: float = 0.0
    input_dropout: float = 0.1
    seed: int = 0
    ensemble: int = 1
    precision: str = "auto"


@dataclass(frozen=True)
class AttentiveProbeConfig:
    """``AttentiveProbe``'s parameters: learned queries and attention heads over a map's tokens, the dropout
    before its classifier and its AdamW schedule. Measured on NDSB val: experiments/attentive_probe/attentive_probe.py."""

    n_queries: int = 4
    n_heads: int = 4
    dropout: float = 0.3
    epochs: int = 30
    lr: float = 1e-3
    weight_decay: float = 0.05
    batch_size: int = 256
    seed: int = 0
    hidden: int = 0  # > 0: a GELU layer of this width before the classes
    precision: str = "auto"


@dataclass(frozen=True)
class FusionConfig:
    """``fuse_pairs``: the numbers of top pairs tried (k chosen on val), the head, whether the objects'
    size and shape metadata is appended to the input (and its weight in an MLP head), and whether the chosen
    MLP head is refit on train + val."""

    ks: tuple[int, ...] = (2, 3, 4, 6, 8)
    head: str = "linear"
    metadata: bool = False
    # The MLP head's weight on the standardised metadata columns: 33 measurements beside thousands of feature
    # dimensions weigh little otherwise. NDSB val, 12 pairs, mean of 2 seeds (experiments/shape_metadata/shape_metadata.py):
    # 68.6% at 1, 69.3% at 2 and 4, 69.6% at 8; 4 was chosen on a first run (69.7% at 4, 69.6% at 8): the
    # gap between 4 and 8 either way is within the seeds' spread.
    metadata_weight: float = 4.0
    refit: bool = False


@dataclass(frozen=True)
class ProbeRunConfig:
    """``run_probe``: RAM for features at a time (larger stores are probed in chunks of pairs)."""

    max_gb: float = 4.0
