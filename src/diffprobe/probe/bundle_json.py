"""What a bundle's ``bundle.json`` holds: one pydantic model per kind (a classifier bundle, a reading ensemble),
versioned by ``format`` and migrated on load.

Format 1 (one pair, a linear head) is migrated to format 2 when read (``pairs`` from ``block`` / ``timestep``, no
measurements, a linear head), so the code after loading sees one format. Format 3 is a reading ensemble
(``probe.ensemble``). Fields this schema does not name (calibration, unknown thresholds, ``model_version``,
``head_config``, the metrics' other keys) are kept as written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr, ValidationError, field_validator

from ..config.probe import HEADS
from ..data.measurements import metadata_columns
from ..utils import DiffprobeError

BUNDLE_FORMAT = 2
READABLE_FORMATS = (1, 2)
ENSEMBLE_FORMAT = 3  # a reading ensemble (probe.ensemble): its members are classifier bundles


class _Described(BaseModel):
    """What every ``bundle.json`` holds: the classes, the image size the backbone reads, the calibration
    temperature and the metrics."""

    model_config = ConfigDict(extra="allow", frozen=True)

    format: StrictInt
    classes: list[StrictStr] = Field(min_length=1)
    image_size: StrictInt = Field(ge=8)
    temperature: StrictFloat = Field(gt=0)


class BundleMetrics(BaseModel):
    model_config = ConfigDict(extra="allow")

    test_accuracy: StrictFloat
    test_macro_f1: StrictFloat


class EnsembleMetrics(BaseModel):
    model_config = ConfigDict(extra="allow")

    test_accuracy: StrictFloat | None  # None: not measured yet
    test_macro_f1: StrictFloat | None


class BundleJSON(_Described):
    """A classifier bundle (format 2): the (block, timestep) pairs its head reads, concatenated in that order (the
    first also as ``block`` / ``timestep``), the object measurements appended (``metadata``: their names), the head
    kind, the preprocessing and feature settings."""

    block: StrictStr
    timestep: StrictInt
    pairs: list[tuple[StrictStr, StrictInt]] = Field(min_length=1)
    preprocess: dict
    feature_spec: dict
    head: Literal[HEADS] = "linear"
    metadata: list[StrictStr] | None = None  # None or []: no measurements
    metrics: BundleMetrics

    @field_validator("format")
    @classmethod
    def _readable(cls, v: int) -> int:
        if v not in READABLE_FORMATS:
            raise ValueError(f"bundle format {v} is not supported (this diffprobe reads {READABLE_FORMATS}); "
                             f"upgrade diffprobe")
        return v

    @field_validator("metadata")
    @classmethod
    def _known_measurements(cls, v: list[str] | None) -> list[str] | None:
        metadata_columns(v or [])  # a ValueError naming the measurement this diffprobe does not know
        return v


class EnsembleJSON(_Described):
    """A reading ensemble (format 3): its members' folder names; the backbone is shared."""

    format: Literal[ENSEMBLE_FORMAT]
    members: list[StrictStr] = Field(min_length=2)
    metrics: EnsembleMetrics


def migrated(meta: dict) -> dict:
    """A format-1 description as format 2 (in a new dict); any other returned unchanged."""
    if not isinstance(meta, dict) or meta.get("format") != 1:
        return meta
    return {**meta, "format": BUNDLE_FORMAT, "pairs": [[meta.get("block"), meta.get("timestep")]],
            "metadata": meta.get("metadata") or [], "head": meta.get("head", "linear")}


def check_description(meta: dict, schema: type[_Described], where: Path) -> None:
    """``meta`` checked against ``schema``, or a DiffprobeError naming the file, the field and the fix."""
    if not isinstance(meta, dict):
        raise DiffprobeError(f"{where}: not a bundle description (a JSON object); re-create the bundle")
    try:
        schema.model_validate(meta)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(x) for x in err["loc"])
        if err["type"] == "missing":
            raise DiffprobeError(f"{where}: missing field {field!r}; the bundle is incomplete, re-create it") from None
        fix = "" if "upgrade diffprobe" in err["msg"] else "; re-create the bundle"
        raise DiffprobeError(f"{where}: field {field!r}: {err['msg']}, got {err['input']!r}{fix}") from None
