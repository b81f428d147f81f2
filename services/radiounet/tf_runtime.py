"""Import TensorFlow and Keras once, quietly.

TensorFlow's C++ start-up chatter (absl INFO lines that ignore
TF_CPP_MIN_LOG_LEVEL) drowns command-line output, so the import runs with the
process's stderr pointed at /dev/null; Python exceptions still propagate.
Every module takes ``tf``/``keras`` from here.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

__all__ = ["keras", "tf"]

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@contextlib.contextmanager
def _quiet_stderr_fd() -> Iterator[None]:
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # stderr replaced (e.g. captured)
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


with _quiet_stderr_fd():
    import keras
    import tensorflow as tf
