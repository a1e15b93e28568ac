"""The argparse machinery of the command line (docs/cli.md, Help and suggestions): usage errors exit 1 (never
argparse's 2, which means "changes present" with --detailed-exitcode), and a mistyped command, subcommand,
option or choice gets the closest valid one:

    unknown command 'aply': did you mean 'apply'?
    unrecognized option --yess: did you mean --yes?
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any, NoReturn

from intuned_runs.errors import UsageError
from intuned_runs.suggest import closest


def duration(text: str) -> float:
    """DUR is an integer with a unit: `90s`, `15m`, `1h` (docs/apply.md)."""
    units = {"s": 1, "m": 60, "h": 3600}
    if len(text) < 2 or text[-1] not in units or not text[:-1].isdigit():
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: use an integer with a unit, like 90s, 15m or 1h")
    return int(text[:-1]) * units[text[-1]]


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are UsageError (exit 1), each with a suggestion when one is close."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        choices = action.choices
        if choices is None or value in choices:
            return
        names = [str(c) for c in choices]
        match = closest(str(value), names)
        if isinstance(action, argparse._SubParsersAction):
            words = self.prog.split()[1:]  # "intuned-runs state" -> ["state"]
            typed, meant = " ".join([*words, str(value)]), " ".join([*words, match or ""])
            hint = f": did you mean '{meant}'?" if match else f" (see {self.prog} --help)"
            raise UsageError(f"unknown command '{typed}'{hint}")
        option = "/".join(action.option_strings) or action.metavar or action.dest
        hint = f": did you mean '{match}'?" if match else ""
        raise UsageError(f"invalid choice {value!r} for {option}{hint} (choose from {', '.join(names)})")

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            raise UsageError(self._unrecognized(parsed, extras))
        return parsed

    def _unrecognized(self, parsed: argparse.Namespace, extras: list[str]) -> str:
        """What to say of arguments no parser took: the first option, with the closest one of the command
        it was given to."""
        active = self._active(parsed)
        option = next((e for e in extras if e.startswith("-")), None)
        if option is None:
            return f"unexpected argument {extras[0]!r} (see {active.prog} --help)"
        name = option.partition("=")[0]
        known = [s for action in active._actions for s in action.option_strings if s.startswith("--")]
        match = closest(name, known)
        if match:
            return f"unrecognized option {name}: did you mean {match}?"
        return f"unrecognized option {name} (see {active.prog} --help)"

    def _active(self, parsed: argparse.Namespace) -> argparse.ArgumentParser:
        """The (sub)command parser the arguments were given to."""
        parser: argparse.ArgumentParser = self
        while True:
            sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
            chosen = getattr(parsed, sub.dest, None) if sub is not None else None
            if sub is None or chosen not in sub.choices:
                return parser
            parser = sub.choices[chosen]
