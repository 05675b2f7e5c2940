"""``python -m diffprobe.cli`` (as ``torchrun`` / ``accelerate launch`` start it) is the ``diffprobe`` command."""

import sys

from .main import main

sys.exit(main())
