"""Where everything the user sees goes: stdout for reports, stderr for diagnostics (docs/cli.md).

Every write passes through the redactor, so a secret value can reach no stream even by mistake.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import TextIO

from msgspec import Struct, field

from intuned_runs.redaction import Redactor
from intuned_runs.report.style import PLAIN, Palette, colour_wanted


class Output(Struct):
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    redactor: Redactor = field(default_factory=Redactor)
    verbose: bool = False
    quiet: bool = False
    debug: bool = False
    # Colour per stream (docs/cli.md, Streams and colour): painters that add SGR sequences, or not.
    paint: Palette = PLAIN  # for stdout
    paint_err: Palette = PLAIN  # for stderr

    _progress_shown: bool = False

    def use_colour(self, *, no_color: bool, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.paint = Palette(colour_wanted(no_color, env, _is_terminal(self.stdout)))
        self.paint_err = Palette(colour_wanted(no_color, env, _is_terminal(self.stderr)))

    def _clear_progress(self) -> None:
        if self._progress_shown:
            self.stderr.write("\r\x1b[K")
            self._progress_shown = False

    def live(self, text: str) -> None:
        """A line on stderr that the next one replaces, only when a person is watching (no TTY: nothing)."""
        if not self.interactive():
            return
        self.stderr.write(f"\r\x1b[K{self.redactor(text)}")
        self.stderr.flush()
        self._progress_shown = True

    def end_live(self) -> None:
        self._clear_progress()
        self.stderr.flush()

    def progress(self, done: int, total: int, label: str) -> None:
        """A one-line progress bar on stderr, only when a person is watching (docs/cli.md, Streams and colour)."""
        if not self.interactive() or total <= 0:
            return
        width = 30
        filled = width * done // total
        self.live(f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {label}")
        if done >= total:
            self.end_live()

    def out(self, text: str = "") -> None:
        self._clear_progress()
        self.stdout.write(self.redactor(text) + "\n")
        self.stdout.flush()

    def err(self, text: str = "") -> None:
        self._clear_progress()
        self.stderr.write(self.redactor(text) + "\n")
        self.stderr.flush()

    def info(self, text: str) -> None:
        """A diagnostic that -q silences."""
        if not self.quiet:
            self.err(text)

    def error(self, text: str) -> None:
        """`error: TEXT` on stderr, the label red on a colour terminal."""
        self.err(f"{self.paint_err.severity('error')}: {text}")

    def warning(self, text: str) -> None:
        self.err(f"{self.paint_err.severity('warning')}: {text}")

    def log(self, text: str) -> None:
        """--debug lines (requests and responses, redacted)."""
        if self.debug:
            self.err(f"debug: {text}")

    def stdin_is_tty(self) -> bool:
        return sys.stdin.isatty()

    def interactive(self) -> bool:
        """Prompts and progress bars only when a person is there (stdin and stderr are terminals)."""
        return self.stdin_is_tty() and _is_terminal(self.stderr)

    def confirm(self, question: str) -> bool:
        self.stderr.write(self.redactor(question) + " ")
        self.stderr.flush()
        answer = sys.stdin.readline()
        return answer.strip().lower() in ("y", "yes")


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a closed or fake stream
        return False
