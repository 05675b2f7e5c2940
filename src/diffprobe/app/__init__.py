"""The validation web app: see, correct and grow the labels of a folder of images with a bundle's frozen features.

``project`` makes a project folder (``diffprobe app init``: features computed once, predictions, a SQLite
store), ``store`` keeps every object and every decision (SQLAlchemy; history appended, never overwritten),
``learn`` refits a head on the validated labels and clusters the uncertain images from the cached features,
``export`` writes EcoTaxa TSV and CSV, and ``server`` serves the plain HTML/JS/CSS of ``static/`` and the JSON
API (FastAPI, ``diffprobe app --project DIR``). Application layer: the library never imports it, and it takes
from the library only workflows and the public API (what a library package's ``__init__`` exports; the
``app-seam`` contract of ``pyproject.toml``).
"""
