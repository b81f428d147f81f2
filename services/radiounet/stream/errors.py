"""What can go wrong in a stage: transient (retry with back-off) or permanent (dead letter).

Each error carries a stable ``code``: the dead-letter ``reason`` and the
``reason`` label of the error counters, so dashboards do not depend on wording.
"""

from __future__ import annotations

__all__ = ["PermanentError", "StageError", "TransientError"]


class StageError(Exception):
    """Base of the stage errors; ``code`` is short, stable and label-safe."""

    code = "error"

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail)
        if code is not None:
            self.code = code

    @property
    def detail(self) -> str:
        return str(self)


class PermanentError(StageError):
    """Retrying cannot help (bad message, bad FITS, outside the survey): dead-letter it."""

    code = "permanent"


class TransientError(StageError):
    """A dependency is unavailable (broker, object store, model server): retry later."""

    code = "unavailable"
