"""The web app's settings, as pydantic dataclasses without torch: serving a project (``server.serve``), making
one (``project.init_project``) and a classifier bundle from its validated labels (``export.export_bundle``).
The functions take these as their parameters' defaults; the command line reads them from here."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, NonNegativeInt, PositiveInt
from pydantic.dataclasses import dataclass

from ..base import Precision, Settings
from ..config.features import ExtractConfig
from ..workflows.config import AdaptConfig


@dataclass(frozen=True)
class ServeConfig(Settings):
    """Where the app listens: loopback by default (this machine only; any other host needs a token)."""

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8000


@dataclass(frozen=True)
class InitConfig(Settings):
    """A new project: images per resumable chunk, images per batch, the model's precision."""

    chunk: PositiveInt = 2048
    batch_size: PositiveInt = ExtractConfig.batch_size
    precision: Precision = "auto"


@dataclass(frozen=True)
class BundleConfig(Settings):
    """A new classifier bundle from a project's validated labels. ``min_per_class``: the validated images a class
    needs to be in it (fewer: left out, and named); at 5 the head's choice of regularisation, its temperature and
    its unknown thresholds rest on 5-fold cross-validated predictions (``workflows.adapt`` takes as many folds
    as the smallest class allows, up to 5). ``seed``: of those folds, as few-shot adaptation's."""

    min_per_class: Annotated[int, Field(ge=2)] = 5
    seed: NonNegativeInt = AdaptConfig.seed
