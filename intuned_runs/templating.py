"""Jinja templating in a sandbox (docs/templating.md, docs/secrets.md).

Every string value is a template; strings without `{{`/`{%` are returned untouched. A value that is
exactly one `{{ expression }}` keeps the expression's Python value. Each distinct source is compiled
once: a repository of 10,000 runs reuses a handful of templates.

Two views of every request: with `placeholders=True` (everything displayed, stored, hashed, validated)
`secret('X')` gives `(secret:X)`; the real view is rendered only for the body apply sends.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.environment import TemplateExpression
from msgspec import Struct

from intuned_runs import bounds, env_allow, sandbox
from intuned_runs.bounds import LimitError
from intuned_runs.documents import MAX_INT_BITS, TOO_MANY_DIGITS
from intuned_runs.sandbox import Sandbox

API_KEY_VARIABLE = "INTUNED_API_KEY"
API_KEY_READ = f"env.{API_KEY_VARIABLE} may not be read by templates: the API key stays out of runs"
# Exactly one `{{ expression }}` and nothing else (no trailing newline); `{{-`/`-}}` trim markers are
# Jinja's whitespace control, not part of the expression.
_SINGLE = re.compile(r"\A\{\{-?(?P<expr>(?:(?!\{\{|\}\}|\{%|\{#).)*?)-?\}\}\Z", re.DOTALL)


# secret('NAME') written in a file's text. The word boundary before `secret` is tested apart: a pattern starting
# with `\b` is not found by re's fast scan for its literal start, ten times slower over 37 MB of run files.
_SECRET_CALL = re.compile(r"""secret\(\s*(['"])([^'"\\]+)\1\s*\)""")


def secret_refs(text: str) -> Iterator[re.Match[str]]:
    """The calls secret('NAME') in `text` whose `secret` starts a word, in order; group 2 is the name."""
    at = 0
    while (match := _SECRET_CALL.search(text, at)) is not None:
        start = match.start()
        if start and (text[start - 1].isalnum() or text[start - 1] == "_"):  # inside a word: no boundary
            at = start + 1
            continue
        yield match
        at = match.end()


def placeholder(name: str) -> str:
    return f"(secret:{name})"


class TemplateError(Exception):
    """A template that cannot be rendered; `path` is relative to the rendered value."""

    def __init__(self, message: str, path: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.message, self.path = message, path


class EnvVars(Mapping[str, str]):
    """`env` as templates see it: only names env_allow admits (docs/configuration.md), never the API key.
    A name not admitted is an error even under `| default(…)`, so it is raised here, not left undefined."""

    def __init__(self, environ: Mapping[str, str], allow: tuple[str, ...]) -> None:
        self._environ = environ
        self._allow = allow
        self.reads: set[str] = set()  # every name asked for, also computed ones (`env[vars.name]`)

    def __getitem__(self, name: str) -> str:
        self.reads.add(name)
        if name == API_KEY_VARIABLE:
            raise TemplateError(API_KEY_READ)
        refusal = env_allow.refusal(name, self._allow)
        if refusal is not None:
            raise TemplateError(refusal)
        return self._environ[name]  # KeyError: undefined, "not set" unless a default applies

    def __iter__(self) -> Iterator[str]:
        # Reads by name only: `env.items()` or `env | dictsort` would read secret() variables (and
        # every other one) past the check that forbids reading a secret through env (docs/secrets.md).
        raise TemplateError("env is read one variable at a time, as env.NAME")

    def __len__(self) -> int:
        raise TemplateError("env is read one variable at a time, as env.NAME")


class _Undefined(jinja2.StrictUndefined):
    """Undefined names are errors at their file:line, with a message that says what to do."""

    @property
    def _undefined_message(self) -> str:
        if isinstance(self._undefined_obj, EnvVars):
            name = self._undefined_name
            return f"environment variable {name} is not set: set it or use {{{{ env.{name} | default('…') }}}}"
        if self._undefined_hint:
            return self._undefined_hint
        return f"undefined: {super()._undefined_message}"


class _Compiled(Struct, frozen=True):
    render: Any  # callable(context) -> value
    single: bool
    secret_calls: bool  # calls secret() at all
    secret_outside_output: bool  # calls or names secret() outside a `{{ }}` expression
    env_names: frozenset[str]  # names read as env.NAME / env['NAME']
    secret_names: frozenset[str]  # names read as secret('NAME')
    constant: bool = False  # depends only on vars, env and secret('CONST'): one value per renderer


def _analyse(ast: nodes.Node) -> tuple[bool, bool, frozenset[str], frozenset[str]]:
    secret_names: set[str] = set()
    env_names: set[str] = set()
    in_output: set[int] = set()
    for output in ast.find_all(nodes.Output):
        for child in output.nodes:
            if not isinstance(child, nodes.TemplateData):
                in_output.update(id(n) for n in child.find_all(nodes.Name))
                if isinstance(child, nodes.Name):
                    in_output.add(id(child))
    uses = False
    outside = False
    for name in ast.find_all(nodes.Name):
        if name.name == "secret":
            uses = True
            if id(name) not in in_output:
                outside = True
    for call in ast.find_all(nodes.Call):
        if (
            isinstance(call.node, nodes.Name)
            and call.node.name == "secret"
            and call.args
            and isinstance(call.args[0], nodes.Const)
            and isinstance(call.args[0].value, str)
        ):
            secret_names.add(call.args[0].value)
    for getattr_node in ast.find_all(nodes.Getattr):
        if isinstance(getattr_node.node, nodes.Name) and getattr_node.node.name == "env":
            env_names.add(getattr_node.attr)
    for getitem in ast.find_all(nodes.Getitem):
        if (
            isinstance(getitem.node, nodes.Name)
            and getitem.node.name == "env"
            and isinstance(getitem.arg, nodes.Const)
            and isinstance(getitem.arg.value, str)
        ):
            env_names.add(getitem.arg.value)
    return uses, outside, frozenset(env_names), frozenset(secret_names)


_SCALARS = (str, bool, int, float, type(None))


def valid_unicode(text: str) -> str:
    """A lone surrogate (`'\\ud800'`) cannot be written as UTF-8: an error at its value, not a crash
    when the value is output, hashed or sent (docs/templating.md, Limits)."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as e:
            raise TemplateError(
                f"not valid Unicode: {text[e.start]!r} at character {e.start + 1} is a lone surrogate"
            ) from e
    return text


def _json_value(value: Any) -> Any:
    """A single expression keeps its value only if JSON can carry it (a tuple becomes a list);
    `{{ range(3) }}` or `{{ cycler }}` is an error, never a crash later in output or hashing."""
    if type(value) in _SCALARS:
        if type(value) is int and value.bit_length() > MAX_INT_BITS:  # JSON output would refuse it
            raise TemplateError(TOO_MANY_DIGITS)
        return valid_unicode(value) if type(value) is str else value
    if isinstance(value, str):  # `| tojson` gives Markup, a str that YAML output cannot represent
        return valid_unicode(str(value))
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, jinja2.Undefined):
        str(value)  # raises UndefinedError with the name
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {_json_value(k): _json_value(v) for k, v in value.items()}
    raise TemplateError(
        f"the expression gives a {type(value).__name__}, not a string, number, boolean, null, list or mapping"
    )


_CONSTANT_NAMES = frozenset({"vars", "env", "secret"})


def _constant(ast: nodes.Template) -> bool:
    """True when a template's value is the same for every run: it reads only vars, env (both fixed for
    a process) and secret() with literal names, and uses nothing random. Such values are rendered once:
    a repository of 10,000 runs repeats `{{ vars.limit }}` 10,000 times (docs/performance.md).

    Every name counts, also those a template sets itself (`{% set x %}`, loop variables): that only makes a
    few templates render per run, and saves meta's code-generation pass (docs/performance.md, What a plan loads)."""
    if not {name.name for name in ast.find_all(nodes.Name)} <= _CONSTANT_NAMES:
        return False
    if any(f.name == "random" for f in ast.find_all(nodes.Filter)):
        return False
    return all(
        len(call.args) == 1 and isinstance(call.args[0], nodes.Const) and not call.kwargs
        for call in ast.find_all(nodes.Call)
        if isinstance(call.node, nodes.Name) and call.node.name == "secret"
    )


class Renderer:
    """Renders values; one per process and environment, caching compiled templates by source."""

    def __init__(self, environ: Mapping[str, str], env_allow: tuple[str, ...], *, placeholders: bool = True) -> None:
        self.environ = environ
        self.env = EnvVars(environ, env_allow)
        self.placeholders = placeholders
        self._jinja = Sandbox(undefined=_Undefined, autoescape=False, keep_trailing_newline=True)
        self.rendered = 0  # characters of the values rendered since `start_file`
        self._cache: dict[str, _Compiled] = {}
        self._constants: dict[str, Any] = {}
        self._fill_unset = False  # per view: placeholders and real secrets never mix
        self.secrets_used: set[str] = set()  # secret names seen by the current render (reset by caller)
        self.env_reads: set[str] = set()  # env names read statically by rendered templates

    def with_secrets(self, *, fill_unset: bool = False) -> Renderer:
        """The real view: secret(NAME) returns the environment's value (for the sent body only).

        `fill_unset` (the emulator, docs/apply.md): an unset secret sends its placeholder text instead."""
        real = Renderer(self.environ, (), placeholders=False)
        real.env = self.env
        real._cache = self._cache  # compiled code does not depend on the view
        real._jinja = self._jinja  # compiled code charges its environment's budget
        real._fill_unset = fill_unset
        return real

    def start_file(self) -> None:
        """A new budget of work and size: one per run file (docs/templating.md, Limits)."""
        self._jinja.budget = bounds.Budget()
        self.rendered = 0

    def _secret(self, name: Any) -> str:
        if not isinstance(name, str):
            raise TemplateError("secret() takes the name of an environment variable, as a string")
        self.secrets_used.add(name)
        if self.placeholders:
            return placeholder(name)
        value = self.environ.get(name, "")
        if not value:
            if self._fill_unset:
                return placeholder(name)
            raise TemplateError(f"secret {name} is not set")
        return value

    def _compile(self, source: str) -> _Compiled:
        compiled = self._cache.get(source)
        if compiled is not None:
            return compiled
        try:
            sandbox.check_depth(self._jinja, source)  # before the parser, which recurses per level
            ast = self._jinja.parse(source)
            sandbox.check_tree_depth(ast)  # before the compiler, which recurses per node
            uses, outside, env_names, secret_names = _analyse(ast)
            constant = _constant(ast)
            ast = sandbox.guard(ast)
            if _SINGLE.match(source):
                output = ast.body[0]
                assert isinstance(output, nodes.Output) and len(output.nodes) == 1
                body = [nodes.Assign(nodes.Name("result", "store"), output.nodes[0], lineno=1)]
                template = self._jinja.from_string(nodes.Template(body, lineno=1))
                expression = TemplateExpression(template, undefined_to_none=False)
                compiled = _Compiled(expression, True, uses, outside, env_names, secret_names, constant)
            else:
                template = self._jinja.from_string(ast)
                compiled = _Compiled(template.render, False, uses, outside, env_names, secret_names, constant)
        except jinja2.TemplateSyntaxError as e:
            raise TemplateError(f"template syntax error: {e.message}") from e
        except LimitError as e:
            raise TemplateError(str(e)) from e
        except (RecursionError, SyntaxError) as e:  # a shape the depth checks do not foresee
            raise TemplateError(sandbox.TOO_DEEP) from e
        except ValueError as e:  # an integer literal of more than 4,300 digits
            raise TemplateError(f"template syntax error: {TOO_MANY_DIGITS}") from e
        self._cache[source] = compiled
        return compiled

    def render_string(self, source: str, context: Mapping[str, Any], *, secrets_allowed: bool) -> Any:
        if "{" not in source or ("{{" not in source and "{%" not in source):
            return source
        compiled = self._compile(source)
        if compiled.secret_calls:
            if not secrets_allowed:
                raise TemplateError("secret() may only be used inside request")
            if compiled.secret_outside_output:
                raise TemplateError("secret() may only be used inside {{ }} expressions")
        if compiled.env_names:
            self.env_reads.update(compiled.env_names)
        if compiled.constant:
            if source in self._constants:
                self.secrets_used.update(compiled.secret_names)
                value = self._constants[source]
                return copy.deepcopy(value) if isinstance(value, (dict, list)) else value
            value = self._render(compiled, context)
            self._constants[source] = value
            return copy.deepcopy(value) if isinstance(value, (dict, list)) else value
        return self._render(compiled, context)

    def _render(self, compiled: _Compiled, context: Mapping[str, Any]) -> Any:
        full = {"env": self.env, "secret": self._secret, **context}
        budget = self._jinja.budget
        budget.start_value()
        try:
            value = compiled.render(**full) if compiled.single else compiled.render(full)
            if compiled.single:
                budget.output(bounds.size(value))
                value = _json_value(value)
            else:
                valid_unicode(value)
        except TemplateError:
            raise
        except LimitError as e:
            raise TemplateError(str(e)) from e
        except RecursionError as e:  # a macro calling itself
            raise TemplateError(sandbox.TOO_DEEP) from e
        except jinja2.UndefinedError as e:
            raise TemplateError(str(e.message)) from e
        except jinja2.exceptions.SecurityError as e:
            raise TemplateError(f"not allowed in templates: {e}") from e
        except jinja2.TemplateError as e:
            raise TemplateError(f"template error: {e}") from e
        except Exception as e:  # a user's expression failing in any way is a problem of that value
            raise TemplateError(f"template error: {type(e).__name__}: {e}") from e
        return value

    def render(
        self,
        value: Any,
        context: Mapping[str, Any],
        *,
        secrets_allowed: bool = False,
        path: tuple[str | int, ...] = (),
        errors: list[TemplateError] | None = None,
    ) -> Any:
        """Render every string (not key) of a value; errors carry the path of the failing string.

        With `errors`, every failing string is collected there (its value becomes None) instead of
        raising at the first, so one validate reports them all (docs/validation.md)."""
        if isinstance(value, str):
            try:
                result = self.render_string(value, context, secrets_allowed=secrets_allowed)
                before = self.rendered
                self.rendered += len(result) if isinstance(result, str) else bounds.size(result, bounds.MAX_FILE)
                if before <= bounds.MAX_FILE < self.rendered:  # once: the loader stops the file there
                    raise TemplateError(f"{bounds.TOO_LARGE}: the runs of one file would make more than 64 MiB")
                return result
            except TemplateError as e:
                if errors is None:
                    raise TemplateError(e.message, path) from e
                errors.append(TemplateError(e.message, path))
                return None
        self.rendered += 8  # a key or an item, and its punctuation
        if isinstance(value, dict):
            self.rendered += 8 * len(value)
            return {
                k: self.render(v, context, secrets_allowed=secrets_allowed, path=(*path, k), errors=errors)
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [
                self.render(v, context, secrets_allowed=secrets_allowed, path=(*path, i), errors=errors)
                for i, v in enumerate(value)
            ]
        return value
