"""diffprobe: frozen diffusion models as feature extractors for fine-grained image classification.

Data flow (each stage usable from Python and from the ``diffprobe`` CLI, passing artifacts on disk):

    data -> backbones -> pretrain -> features -> probe -> evaluate -> report
"""

__version__ = "0.1.0"
