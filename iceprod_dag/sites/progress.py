"""The progress line of a running DAG, one display for `submit` (the local engine) and `watch` (any site).

On a terminal it is one line redrawn in place (rich); otherwise (a log file, a pipe, CI) it is printed as
plain lines, at most one per ``plain_interval_s`` plus the last one, each ending with a newline.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any, TextIO

#: states shown after "done", in this order, when some node is in them
SHOWN_STATES = ("running", "idle", "held", "failed")


def render_progress(counts: Mapping[str, int], total: int, rate: float | None, elapsed: float) -> str:
    """``nodes 12/33 done, 2 running, 3 idle, 1 failed | 1.2 jobs/s | 14s`` (zero states left out, except
    running and failed)."""
    parts = [f"nodes {counts.get('done', 0)}/{total} done"]
    for state in SHOWN_STATES:
        n = counts.get(state, 0)
        if n or state in ("running", "failed"):
            parts.append(f"{n} {state}")
    text = ", ".join(parts)
    if rate is not None:
        text += f" | {rate:.1f} jobs/s"
    return text + f" | {elapsed:.0f}s"


class ProgressLine:
    """A context manager; ``show(text)`` as often as wanted, it redraws at most every ``interval_s``."""

    def __init__(
        self, stream: TextIO | None = None, interval_s: float = 0.25, plain_interval_s: float = 10.0
    ) -> None:
        self.stream = stream or sys.stdout
        self.terminal = self.stream.isatty()
        self.interval_s = interval_s if self.terminal else plain_interval_s
        self._live: Any = None
        self._text = ""
        self._shown = ""
        self._at: float | None = None  # the first show draws at once

    def __enter__(self) -> ProgressLine:
        if self.terminal:
            from rich.console import Console
            from rich.live import Live

            self._live = Live("", console=Console(file=self.stream), refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def show(self, text: str) -> None:
        self._text = text
        now = time.monotonic()
        if text != self._shown and (self._at is None or now - self._at >= self.interval_s):
            self._at = now
            self._draw()

    def _draw(self) -> None:
        self._shown = self._text
        if self._live is not None:
            from rich.text import Text

            self._live.update(Text(self._text))
        else:
            self.stream.write(self._text + "\n")
            self.stream.flush()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._text and self._text != self._shown:
            self._draw()  # the last state is always shown
        if self._live is not None:
            self._live.__exit__(kind, exc, tb)
