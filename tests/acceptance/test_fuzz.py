"""A seeded fuzzer over run files and the config (docs/security.md, Hostile input): byte flips, hostile template
snippets, deep nesting, huge numbers and random YAML tokens. Every case must end with exit 0 or 1 and never
`unexpected error`, and an apply of a repository that does not validate must send nothing. Bounded in count
and in time, so the suite stays fast; the seed is fixed, so a failure reproduces."""

from __future__ import annotations

import json
import random
import shutil
import time

from intuned_runs.emulator.server import Emulator
from tests.helpers import OPS_YAML, SHOP_YAML, Repo, remote

SEED = 20261202
CASES = 400
SECONDS = 15.0  # the fuzzer stops early rather than slow the suite down
CONFIG = """\
default_project: shop
env_allow: [REGION]
vars:
  limit: 50
  region: "{{ env.REGION | default('eu') }}"
"""
SNIPPETS = [
    "{{ " + "[" * 80 + "]" * 80 + " }}",
    "{{ " + "(" * 500 + "1" + ")" * 500 + " }}",
    "{{ 'a'|center(10**9) }}",
    "{{ '%*s'|format(10**9, 'a') }}",
    "{{ 'a'|indent(10**9) }}",
    "{{ ('a' * 600000)|wordwrap(1) }}",
    "{{ ['a' * 600000, 'b']|join('x' * 600000) }}",
    "{{ lipsum(10**6) }}",
    "{{ 'a' * 10**9 }}",
    "{{ [1] * 10**9 }}",
    "{{ ('a' * 1000)|replace('a', 'b' * 10**4) }}",
    "{{ 'a'|truncate(10**9) }}",
    "{{ range(10**9) }}",
    "{{ '%1000000000d' % 1 }}",
    "{{ '{:>1000000000}'.format(1) }}",
    "{% set s = 'a' * 1000000 %}{{ s ~ s }}",
    "{% for i in range(100000) %}xxxxxxxxxxxxxxxxxxxxx{% endfor %}",
    "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",
    "{{ '\\ud800' }}",
    "{{ 9" + "9" * 5000 + " }}",
    "{{ 2 ** 100000 }}",
    "{{ ''.__class__.__mro__ }}",
    "{{ env.AWS_SECRET_ACCESS_KEY }}",
    "{{ secret('HOOK_TOKEN') }}",
    "{{ vars.limit }",
    "{% if %}",
    "{{ x",
    "{{ matrix.nope }}",
    "..",
    ".",
    "",
]
TOKENS = [
    "&a ", "*a", "!!python/object/apply:os.system ['true']", "<<: *a", "? ", "- ", "{", "}", "[", "]", "\t",
    "%YAML 1.1\n", "---\n", "...\n", ": ", "'", '"', "#", "|", ">", "!!binary ", "~", "null", "1e999",
    "0x" + "f" * 4000, "9" * 5000, "\\ud800", "\x00", "\u2028", "\ufeff", "yes", "NO", "@",
]  # fmt: skip


def deep(rng: random.Random) -> str:
    depth = rng.choice([60, 101, 150, 1000])
    return "[" * depth + "]" * depth if rng.random() < 0.5 else "{a: " * depth + "1" + "}" * depth


def mutate(rng: random.Random, text: str) -> bytes:
    """One mutation of a YAML text: a template or a value replaced, tokens inserted, bytes flipped."""
    kind = rng.randrange(5)
    if kind == 0:  # a hostile template where a value was
        values = [i for i, c in enumerate(text) if c == ":" and text[i + 1 : i + 2] == " "]
        at = rng.choice(values) + 2 if values else 0
        end = text.find("\n", at)
        text = text[:at] + json.dumps(rng.choice(SNIPPETS)) + text[end if end >= 0 else len(text) :]
    elif kind == 1:  # random YAML tokens
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(text) + 1)
            text = text[:at] + rng.choice(TOKENS) + text[at:]
    elif kind == 2:  # deep nesting or a huge number as a value
        at = text.find("parameters: ")
        value = deep(rng) if rng.random() < 0.6 else rng.choice(["9" * 5000, "1e99999", "-0x" + "f" * 100])
        if at >= 0:
            end = text.find("\n", at)
            text = text[: at + 12] + value + text[end:]
    data = bytearray(text.encode("utf-8"))
    if kind == 3 and data:  # byte flips
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    if kind == 4 and data:  # cut short or duplicated
        cut = rng.randrange(len(data))
        data = data[:cut] if rng.random() < 0.5 else data[:cut] + data[cut // 2 :]
    return bytes(data)


def test_mutated_files_never_crash_and_never_send_from_a_broken_repository(user_repo: Repo) -> None:
    rng = random.Random(SEED)
    bases = {"runs.d/shop.yaml": SHOP_YAML, "runs.d/ops.yaml": OPS_YAML, "intuned-runs.yaml": CONFIG}
    deadline = time.monotonic() + SECONDS
    done = applied = 0
    with Emulator(complete_after=0) as emulator:
        for case in range(CASES):
            if time.monotonic() > deadline:
                break
            for relative, text in bases.items():
                user_repo.write(relative, text)
            target = rng.choice(list(bases))
            user_repo.write_bytes(target, mutate(rng, bases[target]))
            shutil.rmtree(user_repo.root / ".intuned-runs", ignore_errors=True)
            validate = user_repo.cli("validate")
            where = f"case {case}: {(user_repo.root / target).read_bytes()[:3000]!r}"
            assert validate.code in (0, 1), where
            assert "unexpected error" not in validate.out + validate.err, f"{where}\n{validate.err}"
            command = ["plan", *remote(emulator)] if case % 4 else ["apply", "--yes", *remote(emulator)]
            result = user_repo.cli(*command)
            assert result.code in (0, 1), f"{where}\n{result.err}"
            assert "unexpected error" not in result.out + result.err, f"{where}\n{result.err}"
            if validate.code == 1:
                assert result.code == 1 and emulator.received == [], where
            applied += command[0] == "apply"
            emulator.received.clear()
            done += 1
    assert done >= 50 and applied >= 10, f"only {done} cases ({applied} applies) ran in {SECONDS}s"
