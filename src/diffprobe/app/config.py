"""The web app's settings, as plain dataclasses without torch: serving a project (``server.serve``) and making
one (``project.init_project``). The functions take these as their parameters' defaults; the command line reads
them from here."""

from __future__ import annotations

from dataclasses import dataclass

from ..config.features import ExtractConfig


@dataclass(frozen=True)
class ServeConfig:
    """Where the app listens: loopback by default (this machine only; any other host needs a token)."""

    host: str = "127.0.0.1"
    port: int = 8000


@dataclass(frozen=True)
class InitConfig:
    """A new project: images per resumable chunk, images per batch, the model's precision."""

    chunk: int = 2048
    batch_size: int = ExtractConfig.batch_size
    precision: str = "auto"
