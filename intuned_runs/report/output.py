"""Where everything the user sees goes: stdout for reports, stderr for diagnostics (docs/cli.md).

Every write passes through the redactor, so a secret value can reach no stream even by mistake.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TextIO

from intuned_runs.redaction import Redactor


@dataclass
class Output:
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    redactor: Redactor = field(default_factory=Redactor)
    verbose: bool = False
    quiet: bool = False
    debug: bool = False
    no_color: bool = False  # accepted (docs/cli.md); output is plain text, never coloured

    _progress_shown: bool = False

    def _clear_progress(self) -> None:
        if self._progress_shown:
            self.stderr.write("\r\x1b[K")
            self._progress_shown = False

    def progress(self, done: int, total: int, label: str) -> None:
        """A one-line progress bar on stderr, only when a person is watching (docs/cli.md, Streams and colour)."""
        if not self.interactive() or total <= 0:
            return
        width = 30
        filled = width * done // total
        self.stderr.write(f"\r\x1b[K[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {label}")
        self.stderr.flush()
        self._progress_shown = done < total
        if not self._progress_shown:
            self.stderr.write("\r\x1b[K")

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

    def log(self, text: str) -> None:
        """--debug lines (requests and responses, redacted)."""
        if self.debug:
            self.err(f"debug: {text}")

    def stdin_is_tty(self) -> bool:
        return sys.stdin.isatty()

    def interactive(self) -> bool:
        """Prompts and progress bars only when a person is there (stdin and stderr are terminals)."""
        return self.stdin_is_tty() and bool(getattr(self.stderr, "isatty", lambda: False)())

    def confirm(self, question: str) -> bool:
        self.stderr.write(self.redactor(question) + " ")
        self.stderr.flush()
        answer = sys.stdin.readline()
        return answer.strip().lower() in ("y", "yes")
