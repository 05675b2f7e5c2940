"""The reference study: every stage of diffprobe on one dataset, from one config file, resumable.

``diffprobe study configs/ndsb.toml`` runs, in order (each stage a call into the stage's own
module, its artifacts under ``work``):

split -> pretrain (DDPM U-Net) -> features (every block x timestep) -> probe (one grid per seed)
-> cluster (k-means on the best pair) -> fusion (top-k pairs) -> ensemble (a second reading of the images, its own
fused head, the two averaged) -> shift (robustness suite)
-> compare (baselines, natural and balanced) -> rcdit (RC-DiT pretraining) -> zeroshot (RC-DiT,
DINO, DDPM) -> report (``results``/study.json, study.md, study.html and the figures).

A finished stage leaves ``work/stages/<stage>.json`` holding its summary and a key: the hash of its
config section, the shared settings and the keys of the stages it reads. Running again skips every
stage whose key is unchanged and re-runs the others (and so everything downstream of a change);
the long stages also resume inside themselves (checkpoints, partial feature stores).
"""

from __future__ import annotations

import logging
import platform
import shutil
import time
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError, create_model

import numpy as np

from ..base import DiffprobeError, invalid_settings
from ..config import default_of
from ..config.backbones import ARCHS, ConvNetConfig, RCDiTConfig, UNetConfig
from ..config.evaluate import DiffusionClassifierConfig, ShiftConfig, ZeroShotConfig
from ..config.features import ExtractConfig, FeatureSpec
from ..config.pretrain import DEFAULT_ARCH, BaselineConfig, PretrainConfig, RCDiTPretrainConfig
from ..config.probe import FusionConfig, GridProbeConfig, MLPProbeConfig
from ..report.html import markdown_page
from ..report.tables import study_report
from ..utils import DiffprobeError, code_version, expand_data_path, hash_json, read_json, resolve_precision, write_json
from .config import CompareConfig

log = logging.getLogger(__name__)

STAGES = ("split", "pretrain", "features", "probe", "cluster", "fusion", "ensemble", "shift", "compare", "rcdit",
          "zeroshot")
# The stages each stage reads (it cannot run without them) ...
REQUIRES = {"split": (), "pretrain": ("split",), "features": ("split", "pretrain"), "probe": ("features",),
            "cluster": ("features", "probe"), "fusion": ("features", "probe"),
            "ensemble": ("split", "pretrain", "features", "probe", "fusion"), "shift": ("split", "probe"),
            "compare": (), "rcdit": ("split",), "zeroshot": ("split",)}
# ... and those it uses when they ran (zero-shot evaluates whichever models exist).
OPTIONAL = {"zeroshot": ("rcdit", "compare", "probe"), "shift": ("fusion",)}

# Every setting a config may hold, as one pydantic model per section (frozen, unknown keys refused, TOML's types
# required as written: no bool for a number, no string for a list). A setting a stage's own settings class declares
# is *taken* from it (type, bounds and default, ``SettingFrom``), never restated; the study's own choices are declared
# here with their bounds and say why at the field.


@dataclass(frozen=True)
class SettingFrom:
    """A section setting declared by a stage's settings class: ``cls.name`` (``key`` in the config file)."""

    cls: type
    name: str
    key: str = ""


class Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


def _toml_type(annotation):
    """A settings class field's type as TOML writes it: a tuple is a list."""
    if typing.get_origin(annotation) is tuple:
        return list[typing.get_args(annotation)[0]]
    return annotation


def section(name: str, doc: str, own: type[Section] = Section, *taken: SettingFrom) -> type[Section]:
    """The model of a section: ``own``'s fields (the study's choices) and the ``taken`` ones, each with the type,
    bounds and default of the settings class that declares it (recorded in the field's ``defined_in``)."""
    fields_ = {}
    for t in taken:
        declared, default = t.cls.__pydantic_fields__[t.name], default_of(t.cls, t.name)
        defined_in = Field(json_schema_extra={"defined_in": f"{t.cls.__name__}.{t.name}"})
        toml_type = _toml_type(declared.annotation)
        # A tuple's Strict(False) lets a settings class read JSON's lists; TOML's list is already the section's type
        # (and pydantic 2.0 refuses Strict on a list).
        metadata = [m for m in declared.metadata if not (toml_type is not declared.annotation and isinstance(m, Strict))]
        fields_[t.key or t.name] = (Annotated[(toml_type, *metadata, defined_in)],
                                    list(default) if isinstance(default, tuple) else default)
    return create_model(name, __base__=own, __doc__=doc, __module__=__name__, **fields_)


def _from(cls: type, *names: str) -> list[SettingFrom]:
    return [SettingFrom(cls, n) for n in names]


Stage = Literal[STAGES]


class _Top(Section):
    name: str = "study"
    data: str = ""
    work: str = ""
    results: str = ""
    seed: int = Field(0, ge=0)
    stages: list[Stage] = list(STAGES)


TopSettings = section("TopSettings", """The top level of a study config: its name, where the data, the runs and the
report are, the shared seed, image size and precision, and the stages to run.""", _Top,
                      SettingFrom(UNetConfig, "image_size"), SettingFrom(PretrainConfig, "precision"))

PRETRAIN_BACKBONES = ("ddpm", "supervised")


class _Pretrain(Section):
    backbone: Literal[PRETRAIN_BACKBONES] = "ddpm"
    arch: Literal[tuple(ARCHS)] = DEFAULT_ARCH["supervised"]  # supervised: resnet or convnet
    steps: int = Field(8000, ge=1)  # the study's budget: in steps, so the same config gives the same run anywhere
    checkpoint_every: int = Field(250, ge=0)  # the study checkpoints twice as often as 'diffprobe pretrain'
    ema_decay: float = Field(0.0, ge=0, lt=1)  # supervised; 0: no EMA (TOML has no None)
    # supervised: a classifier bundle or ensemble folder whose probabilities of the train images the CNN learns
    # beside their labels (knowledge distillation, weighted by ``distill``); "": none
    teacher: str = ""


PretrainSection = section("PretrainSection", """[pretrain]: the backbone the later stages read. ``ddpm``: the DDPM
U-Net (``UNetConfig``) and its training (``PretrainConfig``). ``supervised``: a CNN trained end to end on the train
labels (``BaselineConfig``'s supervised method: ``arch`` at the study's image size (a ``convnet`` with its
``stem_stride``), ``steps`` x ``batch_size`` images, with label smoothing, scale jitter, rotation and EMA weights,
and a ``teacher``'s probabilities where one is named; ``channels``, ``warmup_steps`` and ``space_to_depth`` are the
U-Net's and unused).""", _Pretrain,
                          *_from(UNetConfig, "channels", "space_to_depth"),
                          *_from(PretrainConfig, "batch_size", "lr", "warmup_steps"),
                          *_from(BaselineConfig, "label_smoothing", "scale_jitter", "rotate", "distill"),
                          SettingFrom(ConvNetConfig, "stem_stride"))


class _Features(Section):
    crop: bool = False  # true: features of the images cut to their organism (false: as the model was pretrained)


FeaturesSection = section("FeaturesSection", """[features]: which features are read (``FeatureSpec``) and in what
batches (``ExtractConfig``).""", _Features, *_from(FeatureSpec, "timesteps", "pooling", "blocks", "views"),
                          SettingFrom(ExtractConfig, "batch_size"))


class _Probe(Section):
    seeds: list[Annotated[int, Field(ge=0)]] = Field([0, 1, 2], min_length=1)  # mean and std over the seeds


ProbeSection = section("ProbeSection", """[probe]: the grid is probed once per seed (mean and std reported), with
``GridProbeConfig``'s epochs.""", _Probe, SettingFrom(GridProbeConfig, "epochs"))

FusionSection = section("FusionSection", """[fusion]: ``FusionConfig`` and the MLP head's ensemble
(``MLPProbeConfig``).""", Section, *_from(FusionConfig, "ks", "head", "metadata", "metadata_weight", "refit"),
                        SettingFrom(MLPProbeConfig, "ensemble"))

SHIFT_CLASSIFIERS = ("probe", "fusion")  # [shift] classifier: the best pair's linear probe, or the fused head


class _Shift(Section):
    shifts: list[str] = []  # empty: all of them
    classifier: Literal[SHIFT_CLASSIFIERS] = "probe"


ShiftSection = section("ShiftSection", """[shift]: the severities and shifts of the robustness suite
(``ShiftConfig``) and the classifier it tests (``SHIFT_CLASSIFIERS``).""", _Shift,
                       SettingFrom(ShiftConfig, "severities"))


class _Compare(Section):
    budget_images: int = Field(64000, ge=1)  # the study's budget (the command's is the baselines' own, 200,000)
    dino_arch: Literal["resnet", "vit"] = "vit"  # the same ViT as the RC-DiT encoder, for the zero-shot comparison
    readout: bool = False  # true: every method also read with the [fusion] head, measurements and k choice
    timesteps: list[int] = []  # empty: [features] timesteps
    # The architectures (empty or 0: the method's own).
    ddpm_channels: list[int] = []
    resnet_widths: list[int] = []
    resnet_depths: list[int] = []
    vit_dim: int = Field(0, ge=0)
    vit_depth: int = Field(0, ge=0)
    vit_heads: int = Field(0, ge=0)
    patch_size: int = Field(0, ge=0)


CompareSection = section("CompareSection", """[compare]: ``CompareConfig``, the probes' epochs, and the
architectures (empty or 0: the method's own).""", _Compare, *_from(CompareConfig, "methods", "settings", "per_class"),
                         SettingFrom(GridProbeConfig, "epochs", "probe_epochs"))


class _RCDiT(Section):
    steps: int = Field(1000, ge=1)  # the study's budget, in steps


RCDiTSection = section("RCDiTSection", """[rcdit]: the RC-DiT's architecture (``RCDiTConfig``) and its training
(``RCDiTPretrainConfig``).""", _RCDiT,
                       *_from(RCDiTConfig, "enc_dim", "enc_depth", "enc_heads", "enc_patch", "dit_dim", "dit_depth",
                              "dit_heads", "dit_patch", "r_tokens", "prediction"),
                       *_from(RCDiTPretrainConfig, "batch_size", "r_dropout", "t_sampling", "encoder_view"))


class _ZeroShot(Section):
    positive: str = ""  # empty: no binary task
    dc_t_range: str = ""  # "LOW,HIGH" or "auto" (DiffusionClassifierConfig.t_range); empty: its default
    diffusion_classifier: bool = True  # run the diffusion classifier on the RC-DiT


ZeroShotSection = section("ZeroShotSection", """[zeroshot]: ``ZeroShotConfig`` and the diffusion classifier's test
images (``DiffusionClassifierConfig``), run on the RC-DiT when ``diffusion_classifier``.""", _ZeroShot,
                          *_from(ZeroShotConfig, "shots", "episodes"),
                          SettingFrom(DiffusionClassifierConfig, "max_images", "dc_max_images"),
                          SettingFrom(DiffusionClassifierConfig, "condition", "dc_condition"))

SECTIONS: dict[str, type[Section]] = {"pretrain": PretrainSection, "features": FeaturesSection,
                                      "probe": ProbeSection, "fusion": FusionSection, "shift": ShiftSection,
                                      "compare": CompareSection, "rcdit": RCDiTSection, "zeroshot": ZeroShotSection}
TOP = TopSettings
# Settings added to a section after studies ran without them, with the value those studies had: left out of the
# stage key at that value, so a finished stage is not re-run for a setting it did not have.
ADDED_LATER = {"pretrain": {"arch": DEFAULT_ARCH["supervised"], "stem_stride": ConvNetConfig.stem_stride,
                            "rotate": BaselineConfig.rotate, "teacher": "", "distill": BaselineConfig.distill}}


@dataclass
class StudyConfig:
    """A parsed study config. Paths are as written in the file (relative ones: to the current folder)."""

    source: Path
    name: str
    data: str
    work: Path
    results: Path
    seed: int
    image_size: int
    stages: tuple[str, ...]
    precision: str = "auto"
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def data_path(self) -> Path:
        """``data`` with ``$DIFFPROBE_DATA`` expanded (the config keeps it as written, so stage keys do not
        depend on where a machine keeps its datasets)."""
        return expand_data_path(self.data, self.source)

    def shared(self) -> dict:
        return {"data": self.data, "seed": self.seed, "image_size": self.image_size, "precision": self.precision}


def _validated(where: str, given: dict, settings: type[Section], path: Path) -> dict:
    """``given`` checked against ``settings`` and completed with its defaults; every error names the file and the
    key."""
    try:
        return settings.model_validate(given).model_dump()
    except ValidationError as e:
        raise DiffprobeError(f"{path}: {invalid_settings(where, e, settings.model_fields)}") from None


def load_config(path: str | Path) -> StudyConfig:
    """Read and validate a TOML study config; every error names the file and the setting."""
    path = Path(path)
    if not path.is_file():
        raise DiffprobeError(f"{path}: study config not found; see configs/ for examples")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise DiffprobeError(f"{path}: not valid TOML ({e})") from None
    top = _validated("the top level", {k: v for k, v in raw.items() if k not in SECTIONS}, TOP, path)
    for k in ("data", "work", "results"):
        if not top[k]:
            raise DiffprobeError(f"{path}: set {k} = \"...\" (the image folder, the working folder for runs, "
                                 f"and the folder for the report)")
    sections = {}
    for name, settings in SECTIONS.items():
        given = raw.get(name, {})
        if not isinstance(given, dict):
            raise DiffprobeError(f"{path}: [{name}] must be a table of settings")
        sections[name] = _validated(f"[{name}]", given, settings, path)
    return StudyConfig(source=path, name=top["name"], data=top["data"], work=Path(top["work"]),
                       results=Path(top["results"]), seed=top["seed"], image_size=top["image_size"],
                       precision=top["precision"],
                       stages=tuple(s for s in STAGES if s in top["stages"]), sections=sections)


# ---- stages: each takes (cfg, done) where done maps finished stages to their summaries -------------

def _split(cfg: StudyConfig, done: dict) -> dict:
    from .pipeline import split  # noqa: PLC0415 - the pipeline imports every stage

    m = split(cfg.data_path, cfg.work / "split.csv", seed=cfg.seed)
    sizes = {s: sum(1 for x in m.splits if x == s) for s in ("train", "val", "test")}
    return {"manifest": str(cfg.work / "split.csv"), "sizes": sizes, "n_classes": len(set(m.labels))}


def _pretrain(cfg: StudyConfig, done: dict) -> dict:
    from .pipeline import run_pretrain  # noqa: PLC0415

    s = cfg.sections["pretrain"]
    if s["backbone"] == "supervised":
        return _pretrain_supervised(cfg, done, s)
    unet = UNetConfig(image_size=cfg.image_size, channels=tuple(s["channels"]), space_to_depth=s["space_to_depth"])
    pc = PretrainConfig(unet=unet, steps=s["steps"],
                        batch_size=s["batch_size"], lr=s["lr"], warmup_steps=s["warmup_steps"],
                        checkpoint_every=s["checkpoint_every"], seed=cfg.seed, precision=cfg.precision)
    run = run_pretrain(done["split"]["manifest"], cfg.work / "ddpm", pc, resume=True)
    summary = read_json(Path(run) / "summary.json")
    return {"run": str(run), **summary}


def _pretrain_supervised(cfg: StudyConfig, done: dict, s: dict) -> dict:
    from ..config.pretrain import default_arch  # noqa: PLC0415
    from .pipeline import run_baseline  # noqa: PLC0415

    arch = default_arch("supervised", cfg.image_size, s["arch"])
    if isinstance(arch, ConvNetConfig):
        arch = ConvNetConfig(image_size=cfg.image_size, stem_stride=s["stem_stride"])
    bc = BaselineConfig(method="supervised", arch=arch,
                        budget_images=s["steps"] * s["batch_size"], batch_size=s["batch_size"], lr=s["lr"],
                        checkpoint_every=s["checkpoint_every"], seed=cfg.seed, precision=cfg.precision,
                        label_smoothing=s["label_smoothing"], scale_jitter=s["scale_jitter"],
                        rotate=s["rotate"], ema_decay=s["ema_decay"] or None, distill=s["distill"])
    manifest = done["split"]["manifest"]
    probs = teacher_train_probs(s["teacher"], manifest, cfg.precision) if s["teacher"] else None
    run = run_baseline(manifest, cfg.work / "cnn", bc, resume=True, teacher_probs=probs)
    return {"run": str(run), **({"teacher": s["teacher"]} if s["teacher"] else {}),
            **read_json(Path(run) / "summary.json")}


def teacher_train_probs(teacher: str | Path, manifest: str | Path, precision: str = "auto") -> np.ndarray:
    """A classifier's calibrated probabilities (N_train, classes) of the train images of the split ``manifest``, in
    the split's order: the targets a student learns beside the labels."""
    from scipy.special import softmax  # noqa: PLC0415

    from ..probe.ensemble import load_bundle  # noqa: PLC0415

    bundle = load_bundle(teacher, precision=precision)
    arr = bundle.read_split(manifest)
    train = arr.splits == "train"
    if list(arr.classes) != list(bundle.classes):
        raise DiffprobeError(f"{teacher}: its classes differ from those of {manifest}; a teacher must be trained on "
                             f"the same classes")
    return softmax(bundle.logits(arr.images[train], arr.meta[train]) / bundle.temperature, axis=1)


def _features(cfg: StudyConfig, done: dict) -> dict:
    from .pipeline import run_features  # noqa: PLC0415

    s = cfg.sections["features"]
    spec = FeatureSpec(timesteps=tuple(s["timesteps"]), blocks=tuple(s["blocks"]), pooling=s["pooling"],
                       views=s["views"], seed=cfg.seed, precision=cfg.precision)
    store = run_features(done["pretrain"]["run"], done["split"]["manifest"], cfg.work / "features", spec,
                         batch_size=s["batch_size"], crop=s["crop"] or None)
    return {"store": str(store.path), "n_images": len(store), "pairs": len(store.pairs)}


def _probe(cfg: StudyConfig, done: dict) -> dict:
    from ..probe.linear import GridProbe  # noqa: PLC0415
    from .probe import run_probe  # noqa: PLC0415

    s = cfg.sections["probe"]
    per_seed = []
    for i, seed in enumerate(s["seeds"]):
        out = cfg.work / f"probe-seed{seed}"
        r = run_probe(done["features"]["store"], out, probe=GridProbe(epochs=s["epochs"], seed=seed, precision=cfg.precision), bundle=i == 0)
        per_seed.append({"seed": seed, "dir": str(out), **{k: r["best"][k] for k in (
            "block", "timestep", "val_accuracy", "test_accuracy", "test_macro_f1", "test_balanced_accuracy")}})
    stats = {k: {"mean": float(np.mean([p[k] for p in per_seed])), "std": float(np.std([p[k] for p in per_seed]))}
             for k in ("test_accuracy", "test_macro_f1", "test_balanced_accuracy")}
    first = per_seed[0]["dir"]
    return {"per_seed": per_seed, **stats, "results": f"{first}/results.json", "bundle": f"{first}/bundle",
            "chance_accuracy": read_json(f"{first}/results.json")["chance_accuracy"]}


def _cluster(cfg: StudyConfig, done: dict) -> dict:
    from .pipeline import run_cluster  # noqa: PLC0415

    results = read_json(done["probe"]["results"])
    return run_cluster(done["features"]["store"], cfg.work / "cluster", results=results, seed=cfg.seed)


def _fusion(cfg: StudyConfig, done: dict) -> dict:
    from ..probe.linear import GridProbe  # noqa: PLC0415
    from ..probe.mlp import MLPProbe  # noqa: PLC0415
    from .fusion import fuse_pairs  # noqa: PLC0415

    s = cfg.sections["fusion"]
    r = fuse_pairs(done["features"]["store"], done["probe"]["results"], cfg.work / "fusion", ks=tuple(s["ks"]),
                   head=s["head"], metadata=s["metadata"], metadata_weight=s["metadata_weight"], refit=s["refit"],
                   probe=GridProbe(epochs=cfg.sections["probe"]["epochs"], seed=cfg.seed, precision=cfg.precision),
                   mlp=MLPProbe(seed=cfg.seed, ensemble=s["ensemble"], precision=cfg.precision))
    return {"best": r["best"], "best_single_pair": r["best_single_pair"], **({"refit": r["refit"]} if "refit" in r else {}),
            "bundle": r.get("bundle"),
            "candidates": [{k: c[k] for k in ("k", "val_accuracy", "test_accuracy", "test_macro_f1")}
                           for c in r["candidates"]]}


def _ensemble(cfg: StudyConfig, done: dict) -> dict:
    """The second reading: the features of the images read the other way ([features] crop or not), probed and
    fused with the [probe] / [fusion] settings (k chosen on val again); a reading ensemble of the two fused heads,
    calibrated on val from their train-only heads (``build_ensemble(calibration_from=...)``) when [fusion] refits,
    evaluated once on test."""
    from ..probe.ensemble import build_ensemble  # noqa: PLC0415
    from ..probe.linear import GridProbe  # noqa: PLC0415
    from ..probe.mlp import MLPProbe  # noqa: PLC0415
    from .calibrate import calibrate_bundle  # noqa: PLC0415
    from .evaluate import evaluate_bundle  # noqa: PLC0415
    from .fusion import fuse_pairs  # noqa: PLC0415
    from .pipeline import run_features  # noqa: PLC0415
    from .probe import run_probe  # noqa: PLC0415

    f, fu, manifest = cfg.sections["features"], cfg.sections["fusion"], done["split"]["manifest"]
    out = cfg.work / "ensemble"
    shutil.rmtree(out, ignore_errors=True)  # a stage re-runs whole; the second store is reused from its cache
    spec = FeatureSpec(timesteps=tuple(f["timesteps"]), blocks=tuple(f["blocks"]), pooling=f["pooling"],
                       views=f["views"], seed=cfg.seed, precision=cfg.precision)
    store = run_features(done["pretrain"]["run"], manifest, cfg.work / "features", spec, batch_size=f["batch_size"],
                         crop=not f["crop"])
    probe = GridProbe(epochs=cfg.sections["probe"]["epochs"], seed=cfg.seed, precision=cfg.precision)
    run_probe(store, out / "probe", probe=probe, bundle=False)
    readings = {"first": (done["features"]["store"], done["probe"]["results"], (done["fusion"]["best"]["k"],)),
                "second": (str(store.path), out / "probe" / "results.json", tuple(fu["ks"]))}
    heads = {"head": fu["head"], "metadata": fu["metadata"], "metadata_weight": fu["metadata_weight"], "probe": probe,
             "mlp": MLPProbe(seed=cfg.seed, ensemble=fu["ensemble"], precision=cfg.precision)}
    fused = {name: fuse_pairs(store_path, results, out / f"{name}-train", ks=ks, refit=False, **heads)
             for name, (store_path, results, ks) in readings.items()}
    second = fused["second"]
    bundle = build_ensemble([r["bundle"] for r in fused.values()], out / "train-only")
    calibrate_bundle(bundle, manifest, precision=cfg.precision, progress=False)
    if fu["refit"]:  # the fusion stage's refitted head, and the second's at the k val chose; val calibrated before
        second = fuse_pairs(*readings["second"][:2], out / "second-refit", ks=(second["best"]["k"],), refit=True,
                            **heads)
        bundle = build_ensemble([cfg.work / "fusion" / "bundle", second["bundle"]], out / "bundle",
                                calibration_from=bundle)
    test = evaluate_bundle(bundle, manifest, out / "test", part="test", progress=False)
    return {"bundle": str(bundle), "second_reading": "as framed" if f["crop"] else "cut to the organism",
            "second_k": second["best"]["k"], "second_test_accuracy": second.get("refit", second["best"])["test_accuracy"],
            **{f"test_{m}": test[m] for m in ("accuracy", "macro_f1", "log_loss")}}


def _shift(cfg: StudyConfig, done: dict) -> dict:
    from ..probe.bundle import ClassifierBundle  # noqa: PLC0415
    from .shifts import run_shift_suite  # noqa: PLC0415

    s = cfg.sections["shift"]
    if s["classifier"] not in done:
        raise DiffprobeError(f"{cfg.source}: [shift] classifier = {s['classifier']!r} needs the {s['classifier']} "
                             f"stage; add it to stages")
    path = done["probe"]["bundle"] if s["classifier"] == "probe" else cfg.work / "fusion" / "bundle"
    bundle = ClassifierBundle.load(path, precision=cfg.precision)
    r = run_shift_suite(bundle, done["split"]["manifest"], cfg.work / "shift", severities=tuple(s["severities"]),
                        shifts=tuple(s["shifts"]) or None, seed=cfg.seed)
    return {"classifier": s["classifier"], "clean": r["clean"]["accuracy"], "severities": list(s["severities"]),
            "accuracy": {s: [row["accuracy"] for row in rows] for s, rows in r["shifts"].items()},
            "dir": str(cfg.work / "shift")}


def _compare(cfg: StudyConfig, done: dict) -> dict:
    from dataclasses import replace  # noqa: PLC0415

    from ..backbones.baselines import ResNetConfig  # noqa: PLC0415
    from .compare import compare, default_configs  # noqa: PLC0415
    from ..probe.linear import GridProbe  # noqa: PLC0415

    s = cfg.sections["compare"]
    configs = default_configs(s["methods"], budget_images=s["budget_images"], image_size=cfg.image_size,
                              seed=cfg.seed, dino_arch=s["dino_arch"])
    for m, c in configs.items():
        c = configs[m] = replace(c, precision=cfg.precision)
        if m == "ddpm":
            if s["ddpm_channels"]:
                configs[m] = replace(c, unet=UNetConfig(image_size=cfg.image_size, channels=tuple(s["ddpm_channels"])))
            continue
        if isinstance(c.arch, ResNetConfig):
            arch = {"widths": tuple(s["resnet_widths"]), "depths": tuple(s["resnet_depths"])}
        else:
            arch = {"embed_dim": s["vit_dim"], "depth": s["vit_depth"], "num_heads": s["vit_heads"],
                    "patch_size": s["patch_size"]}
        configs[m] = replace(c, arch=replace(c.arch, **{k: v for k, v in arch.items() if v}))
    r = compare(cfg.data_path, cfg.work / "compare", methods=tuple(s["methods"]), settings=tuple(s["settings"]),
                budget_images=s["budget_images"], seed=cfg.seed, image_size=cfg.image_size, per_class=s["per_class"],
                configs=configs, timesteps=tuple(s["timesteps"] or cfg.sections["features"]["timesteps"]),
                precision=cfg.precision, probe=GridProbe(epochs=s["probe_epochs"], seed=cfg.seed,
                                                         precision=cfg.precision),
                fusion=_fusion_config(cfg) if s["readout"] else None)
    return {"rows": r["rows"], "dir": str(cfg.work / "compare")}


def _fusion_config(cfg: StudyConfig):
    from ..config.probe import FusionConfig  # noqa: PLC0415

    f = cfg.sections["fusion"]
    return FusionConfig(ks=tuple(f["ks"]), head=f["head"], metadata=f["metadata"], metadata_weight=f["metadata_weight"])


def _rcdit(cfg: StudyConfig, done: dict) -> dict:
    from .pipeline import run_rcdit_pretrain  # noqa: PLC0415

    s = dict(cfg.sections["rcdit"])
    training = {k: s.pop(k) for k in ("steps", "batch_size", "r_dropout", "t_sampling", "encoder_view")}
    rc = RCDiTPretrainConfig(model=RCDiTConfig(image_size=cfg.image_size, **s), **training, seed=cfg.seed,
                             precision=cfg.precision)
    run = run_rcdit_pretrain(done["split"]["manifest"], cfg.work / "rcdit", rc, resume=True)
    return {"run": str(run), **read_json(Path(run) / "summary.json")}


def _same_split(a: str | Path, b: str | Path) -> bool:
    return Path(a).is_file() and Path(b).is_file() and Path(a).read_bytes() == Path(b).read_bytes()


def _zeroshot(cfg: StudyConfig, done: dict) -> dict:
    from .zeroshot import probe_representation, run_zeroshot  # noqa: PLC0415

    s = cfg.sections["zeroshot"]
    manifest = done["split"]["manifest"]
    models: dict[str, tuple[str, dict]] = {}
    if "rcdit" in done:
        models["rcdit"] = (done["rcdit"]["run"], {})
    dino = next((r for r in done.get("compare", {}).get("rows", [])
                 if r["method"] == "dino" and r["setting"] == "natural" and r["eval"] == "linear probe"), None)
    skipped = {}
    if dino is None:
        skipped["dino"] = "no DINO run in the compare stage (natural setting)"
    elif not _same_split(Path(done["compare"]["dir"]) / "natural" / "split.csv", manifest):
        skipped["dino"] = "the compare stage's natural split differs from the study's split"
    else:
        models["dino"] = (str(Path(dino["probe_dir"]).parent / "run"), {})
    if "probe" in done:
        models["ddpm"] = (done["pretrain"]["run"], probe_representation(done["probe"]["results"]))
    out = {"skipped": skipped}
    for name, (model, rep) in models.items():
        # The diffusion classifier needs a denoiser conditioned on r: only the RC-DiT has one.
        dc = DiffusionClassifierConfig(max_images=s["dc_max_images"], condition=s["dc_condition"],
                                       **({"t_range": s["dc_t_range"]} if s["dc_t_range"] else {})) if (
            name == "rcdit" and s["diffusion_classifier"]) else None
        zc = ZeroShotConfig(**rep, shots=tuple(s["shots"]), episodes=s["episodes"], positive=s["positive"] or None,
                            diffusion=dc, seed=cfg.seed, precision=cfg.precision)
        r = run_zeroshot(model, manifest, cfg.work / "zeroshot" / name, zc)
        out[name] = {"representation": r["representation"], "dim": r["dim"], "chance_accuracy": r["chance_accuracy"],
                     "prototypes": {k: {m: v[m] for m in ("accuracy", "macro_f1")} for k, v in r["prototypes"].items()},
                     "knn": {m: r["knn"]["weighted"][m] for m in ("accuracy", "macro_f1")},
                     "diffusion_classifier": r["diffusion_classifier"] if "skipped" in r["diffusion_classifier"] else
                     {m: r["diffusion_classifier"][m] for m in ("accuracy", "n_images", "calls_per_image",
                                                                "exhaustive_calls_per_image")},
                     "binary": {k: r["binary"][k] for k in ("pattern", "two_prototypes", "knn") if k in r["binary"]}
                     if "binary" in r else None}
    return out


STAGE_FNS: dict[str, Callable[[StudyConfig, dict], dict]] = {
    "split": _split, "pretrain": _pretrain, "features": _features, "probe": _probe, "cluster": _cluster,
    "fusion": _fusion, "ensemble": _ensemble, "shift": _shift, "compare": _compare, "rcdit": _rcdit, "zeroshot": _zeroshot}


def stage_key(cfg: StudyConfig, stage: str, keys: dict[str, str]) -> str:
    section = {k: v for k, v in cfg.sections.get(stage, {}).items()
               if ADDED_LATER.get(stage, {}).get(k, object()) != v}
    if stage in ("fusion", "cluster"):  # they re-fit probes with the probe stage's settings
        section = {**section, "probe": cfg.sections["probe"]}
    if stage == "compare" and section.get("readout"):  # it reads every method with the fusion stage's settings
        section = {**section, "fusion": cfg.sections["fusion"]}
    return hash_json({"stage": stage, "section": section, "shared": cfg.shared(),
                      "upstream": {d: keys.get(d) for d in REQUIRES[stage] + OPTIONAL.get(stage, ())}})


def run_study(config: str | Path | StudyConfig, *, redo: tuple[str, ...] = ()) -> dict:
    """Run (or resume) the study; write the report to ``cfg.results``; return study.json's dict."""
    cfg = config if isinstance(config, StudyConfig) else load_config(config)
    bad = [s for s in redo if s not in STAGES]
    if bad:
        raise DiffprobeError(f"unknown stage(s) to redo {bad}; stages are {list(STAGES)}")
    marks = cfg.work / "stages"
    done: dict[str, dict] = {}
    keys: dict[str, str] = {}
    timings: dict[str, dict] = {}
    commit = code_version()
    for stage in cfg.stages:
        missing = [d for d in REQUIRES[stage] if d not in done]
        if missing:
            raise DiffprobeError(f"{cfg.source}: stage {stage!r} needs {missing}; add them to stages")
        key = stage_key(cfg, stage, keys)
        mark = marks / f"{stage}.json"
        if stage not in redo and mark.is_file() and read_json(mark).get("key") == key:
            saved = read_json(mark)
            done[stage], keys[stage], timings[stage] = saved["summary"], key, {**saved["timing"], "reused": True}
            log.info("study: %s done before, reused", stage)
            continue
        print(f"== study {cfg.name}: {stage} ==", flush=True)
        t0 = time.time()
        done[stage] = STAGE_FNS[stage](cfg, done)
        keys[stage] = key
        timing = {"wall_seconds": round(time.time() - t0, 1), "commit": commit}
        timings[stage] = {**timing, "reused": False}
        write_json(mark, {"key": key, "summary": done[stage], "timing": timing})
        write_report(cfg, done, timings)  # a partial report after every stage: long studies show progress
    return write_report(cfg, done, timings)


# ---- report -------------------------------------------------------------------------------------

FIGURES = {  # figure name in the report -> (stage, path under work)
    "heatmap": ("probe", "probe-seed{seed}/heatmap.png"),
    "confusion": ("probe", "probe-seed{seed}/confusion.png"),
    "compare": ("compare", "compare/compare.png"),
    "robustness": ("shift", "shift/robustness.png"),
    "shift_examples": ("shift", "shift/shift_examples.png"),
    "samples": ("pretrain", "ddpm/samples.png"),
    "rcdit_samples": ("rcdit", "rcdit/samples.png"),
}


def _machine() -> str:
    import torch  # noqa: PLC0415

    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor()) if Path("/proc/cpuinfo").is_file() else platform.processor()
    return f"{torch.get_num_threads()} CPU threads of {cpu or 'an unnamed CPU'}"


def write_report(cfg: StudyConfig, done: dict, timings: dict) -> dict:
    from .. import __version__  # noqa: PLC0415

    cfg.results.mkdir(parents=True, exist_ok=True)
    seed0 = cfg.sections["probe"]["seeds"][0]
    figures = {}
    for name, (stage, rel) in FIGURES.items():
        src = cfg.work / rel.format(seed=seed0)
        if stage in done and src.is_file():
            figures[name] = Path(shutil.copyfile(src, cfg.results / f"{name}.png"))
    # The code each stage ran at: one commit for a study run from start to end at a clean checkout.
    commits = sorted({t.get("commit") or "unknown" for t in timings.values()})
    study = {"name": cfg.name, "config": str(cfg.source), "results_dir": str(cfg.results), "version": __version__,
             "commits": commits, "wall_minutes": round(sum(t["wall_seconds"] for t in timings.values()) / 60, 1),
             "shared": cfg.shared(), "precision_used": resolve_precision(cfg.precision),
             "sections": cfg.sections, "stages": done, "timings": timings, "figures": sorted(figures),
             "machine": _machine()}
    write_json(cfg.results / "study.json", study)
    md = study_report(study)
    (cfg.results / "study.md").write_text(md)
    (cfg.results / "study.html").write_text(markdown_page(md, figures, f"diffprobe study: {cfg.name}"))
    return study
