"""Progress records yielded by the core's long-running generators, and a helper to run one to its end."""
from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Progress:
    """One step of a long computation: ``step`` of ``total`` done, with a short message."""

    step: int
    total: int
    message: str


def run_to_end(gen: Generator[Any, None, T]) -> T:
    """Exhaust a progress generator and return its return value."""
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value
