"""diffprobe: frozen diffusion models as feature extractors for fine-grained image classification.

Data flow (each stage usable from Python and from the ``diffprobe`` CLI, passing artifacts on disk):

    data -> backbones -> pretrain -> features -> probe -> evaluate -> report
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("diffprobe")  # the installed distribution's version (pyproject.toml), never retyped
except PackageNotFoundError:  # run from a source tree that was never pip-installed
    __version__ = "0+unknown"
__all__ = ["ClassifierBundle", "load_bundle", "__version__"]


def __getattr__(name: str):
    # Lazy, so that 'import diffprobe' (and 'diffprobe --help') does not load torch.
    if name == "ClassifierBundle":
        from .probe.bundle import ClassifierBundle

        return ClassifierBundle
    if name == "load_bundle":  # a bundle or a reading ensemble, whichever the folder holds
        from .probe.ensemble import load_bundle

        return load_bundle
    raise AttributeError(f"module 'diffprobe' has no attribute {name!r}")
