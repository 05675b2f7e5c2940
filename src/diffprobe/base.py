"""The names every layer shares that need neither torch nor numpy: the error a user can fix, the
precision choices and how settings saved before ``precision`` existed read. ``utils`` re-exports them; the
CLI and ``diffprobe.config`` import them from here, so that building the parser (``diffprobe --help``)
does not load torch."""


class DiffprobeError(Exception):
    """An error a user can fix: the message names the file and the fix."""


PRECISIONS = ("auto", "fp32", "bf16")


def legacy_precision(d: dict) -> dict:
    """Settings saved before ``precision`` existed carry ``bf16: true/false``: true was the only default
    then (not a choice), so it reads as ``auto``; false was an explicit opt-out and stays ``fp32``."""
    if "bf16" not in d:
        return d
    d = dict(d)
    flag = d.pop("bf16")
    d.setdefault("precision", "auto" if flag else "fp32")
    return d
