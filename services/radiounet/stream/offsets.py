"""Which offsets may be committed: never past a message whose work is not finished.

A stage may *hold* a message (the reassembler holds every chunk of a pointing
until the map is written), so the committable offset of a partition is the
lowest offset still outstanding, not the last one seen. After a crash the
consumer resumes there, and nothing held is lost.

>>> t = OffsetTracker()
>>> for offset in (5, 6, 7):
...     t.add("chunks", 0, offset)
>>> t.done("chunks", 0, 6)
>>> t.committable()
{('chunks', 0): 5}
>>> t.done("chunks", 0, 5)
>>> t.committable()
{('chunks', 0): 7}
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["OffsetTracker"]

Partition = tuple[str, int]


class OffsetTracker:
    """Outstanding offsets per partition; the commit point is the smallest outstanding one."""

    def __init__(self) -> None:
        self._outstanding: dict[Partition, set[int]] = {}
        self._next: dict[Partition, int] = {}

    def add(self, topic: str, partition: int, offset: int) -> None:
        """A message was taken and is being worked on."""
        tp = (topic, partition)
        self._outstanding.setdefault(tp, set()).add(offset)
        self._next[tp] = max(self._next.get(tp, 0), offset + 1)

    def done(self, topic: str, partition: int, offset: int) -> None:
        """The message's work (and everything it published) is finished."""
        self._outstanding.get((topic, partition), set()).discard(offset)

    def outstanding(self) -> int:
        return sum(len(v) for v in self._outstanding.values())

    def committable(self) -> dict[Partition, int]:
        """Per partition, the offset to commit (the next message to read after a restart)."""
        return {
            tp: min(self._outstanding[tp]) if self._outstanding.get(tp) else nxt
            for tp, nxt in self._next.items()
        }

    def forget(self, partitions: Iterable[Partition]) -> None:
        """Drop partitions this consumer no longer owns (after a rebalance)."""
        for tp in partitions:
            self._outstanding.pop(tp, None)
            self._next.pop(tp, None)
