"""Where the ``mentorpay`` command prints (lines, one-line errors, progress bars) and the exit
codes it returns."""

from __future__ import annotations

import shutil
import sys
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from tqdm import tqdm

__all__ = ["EXIT_ERROR", "EXIT_OK", "EXIT_PROBLEMS", "Output"]

EXIT_OK = 0
EXIT_ERROR = 1
#: The command ran, and found something an operator must look at.
EXIT_PROBLEMS = 2


def _isatty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty()) if callable(isatty) else False


class Output:
    """Where the command prints; tests pass their own streams."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self._bars: dict[str, tqdm[Any]] = {}

    def line(self, text: str = "") -> None:
        print(text, file=self.out)

    def error(self, text: str) -> None:
        self.close()  # the message starts on its own line, after any bar
        print(f"mentorpay: error: {text}", file=self.err)

    def warn(self, text: str) -> None:
        print(f"mentorpay: warning: {text}", file=self.err)

    def progress(self, done: int, total: int, label: str) -> None:
        """Advance the progress bar named ``label`` (tqdm, on stderr, only on a terminal, so
        pipes and logs get no control characters); it closes when ``done`` reaches
        ``total``."""
        if not _isatty(self.err):
            return
        bar = self._bars.get(label)
        if bar is None:
            # Imported on the first bar: `mentorpay --version` and `--help` must start fast.
            from tqdm import tqdm  # noqa: PLC0415

            # shutil falls back to 80 columns where a pseudo-terminal reports 0 (tqdm would
            # then draw an empty line).
            width = shutil.get_terminal_size().columns
            bar = tqdm(
                total=total, desc=label, file=self.err, ncols=width, leave=True, mininterval=0.2
            )
            self._bars[label] = bar
        if bar.total != total:
            bar.total = total
        bar.update(done - bar.n)
        if done >= total:
            bar.close()
            del self._bars[label]

    def close(self) -> None:
        """Close bars left open (an error stopped the work)."""
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()
