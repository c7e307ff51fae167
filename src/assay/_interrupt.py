"""The Ctrl-C request shared by the ``assay`` command and the sweep loop.

The command's SIGINT handler raises ``KeyboardInterrupt`` like Python's own, but an exception
raised while the process forks a pool worker lands in an at-fork callback, where Python only
prints it ("Exception ignored in ...") and carries on. The handler therefore also sets this
event; a sweep checks it before each chunk of runs and stops there as if interrupted.
"""

from __future__ import annotations

import threading

#: Set by the command's SIGINT handler; cleared when the command ends.
STOP_REQUESTED = threading.Event()
