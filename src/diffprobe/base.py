"""The names every layer shares that need neither torch nor numpy: the error a user can fix, and the
precision choices. ``utils`` re-exports them; the CLI imports them from here, so that building its
parser (``diffprobe --help``) does not load torch."""


class DiffprobeError(Exception):
    """An error a user can fix: the message names the file and the fix."""


PRECISIONS = ("auto", "fp32", "bf16")
