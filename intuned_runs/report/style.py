"""How text looks (docs/cli.md, Streams and colour): colour as SGR sequences, nouns that agree with counts.

Colour only ever wraps text in SGR sequences: with them stripped, coloured output is the plain output.
"""

from __future__ import annotations

from collections.abc import Mapping

from msgspec import Struct

SGR = {"red": "31", "green": "32", "yellow": "33", "magenta": "35", "cyan": "36"}
# The plan's symbols (docs/plan.md, Colour); apply's ✓ ✗ follow submitted / failed.
SYMBOL_COLOURS = {"+": "green", "~": "yellow", "-": "red", "!": "cyan", "*": "cyan", "?": "magenta", "→": "cyan"}


class Palette(Struct, frozen=True):
    """Paints text in a colour when enabled; otherwise returns it unchanged."""

    enabled: bool = False

    def __call__(self, text: str, colour: str | None) -> str:
        if not self.enabled or not text or colour is None:
            return text
        return f"\x1b[{SGR[colour]}m{text}\x1b[0m"

    def severity(self, word: str) -> str:
        """`error` red, `warning` yellow."""
        return self(word, {"error": "red", "warning": "yellow"}.get(word))


PLAIN = Palette()


def colour_wanted(no_color_flag: bool, environ: Mapping[str, str], is_terminal: bool) -> bool:
    """On a TTY, unless NO_COLOR (any value, even empty) or --no-color; FORCE_COLOR (set, not empty,
    not 0) turns it on without one; NO_COLOR wins over it (docs/plan.md, Colour)."""
    if no_color_flag or "NO_COLOR" in environ:
        return False
    force = environ.get("FORCE_COLOR", "")
    if force and force != "0":
        return True
    return is_terminal


def plural(count: int, noun: str) -> str:
    """`1 run`, `2 runs`, `0 runs`."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
