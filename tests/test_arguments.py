"""The command line itself (docs/cli.md, Help and suggestions): did-you-mean for commands, subcommands,
options and choices (exit 1), every option described with its default, an example per command and per
`state` subcommand, and `--run X` alone planning only X said in `--help`."""

from __future__ import annotations

import argparse

import pytest

from intuned_runs.arguments import build_parser
from tests.helpers import run_main


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["aply"], "unknown command 'aply': did you mean 'apply'?"),
        (["stat", "list"], "unknown command 'stat': did you mean 'state'?"),
        (["state", "lst"], "unknown command 'state lst': did you mean 'state list'?"),
        (["schema", "pul"], "unknown command 'schema pul': did you mean 'schema pull'?"),
        (["xyzzy"], "unknown command 'xyzzy' (see intuned-runs --help)"),
        (["apply", "--yess"], "unrecognized option --yess: did you mean --yes?"),
        (["plan", "--exlude", "x"], "unrecognized option --exlude: did you mean --exclude?"),
        (["plan", "--selct=x"], "unrecognized option --selct: did you mean --select?"),
        (["state", "forget", "x", "--yse"], "unrecognized option --yse: did you mean --yes?"),
        (["--verbse", "plan"], "unrecognized option --verbse: did you mean --verbose?"),
        (
            ["plan", "--format", "mardown"],
            "invalid choice 'mardown' for --format: did you mean 'markdown'? (choose from text, json, markdown)",
        ),
        (["completion", "bsh"], "invalid choice 'bsh' for shell: did you mean 'bash'? (choose from bash, zsh, fish)"),
    ],
)
def test_a_mistyped_name_gets_the_closest_valid_one_and_exits_1(argv: list[str], message: str) -> None:
    result = run_main(*argv)
    assert (result.code, result.out, result.err) == (1, "", f"error: {message}\n")


def parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    """Every command and subcommand parser, by its words (`state resolve`)."""
    found: list[tuple[str, argparse.ArgumentParser]] = []

    def walk(words: str, parser: argparse.ArgumentParser) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    found.append((f"{words} {name}".strip(), sub))
                    walk(f"{words} {name}", sub)

    walk("", build_parser())
    return found


PARSERS = parsers()


@pytest.mark.parametrize(("words", "parser"), PARSERS, ids=[w for w, _ in PARSERS])
def test_every_option_has_a_description_with_its_default(words: str, parser: argparse.ArgumentParser) -> None:
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) or not action.option_strings:
            continue
        assert action.help and "(default" in action.help.replace("; default", " (default"), (words, action.dest)


def test_the_top_level_options_too() -> None:
    for action in build_parser()._actions:
        if action.option_strings and action.dest not in ("help", "version"):
            assert action.help and "default" in action.help, action.dest


def example(words: str) -> str:
    result = run_main(*words.split(), "--help")
    assert result.code == 0
    return result.out.split("\nExample:\n  ", 1)[1].splitlines()[0]


def test_every_command_and_state_subcommand_has_an_example_of_its_own() -> None:
    examples = {words: example(words) for words, _ in PARSERS}
    for words, text in examples.items():
        assert text.startswith(("intuned-runs ", "INTUNED_API_KEY=", "mkdir ")), words
    state = [examples[w] for w in examples if w.startswith("state ")]
    assert len(state) == len(set(state)) >= 6
    for words, text in examples.items():
        if words.startswith("state "):
            assert f"intuned-runs {words}" in text, words


@pytest.mark.parametrize("command", ["plan", "apply"])
def test_help_says_that_run_alone_plans_only_what_it_names(command: str) -> None:
    result = run_main(command, "--help")
    assert "--run X alone plans only X" in " ".join(result.out.split())
    assert "--exclude SEL" in result.out and "label:KEY!=VALUE" in " ".join(result.out.split())
