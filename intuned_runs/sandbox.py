"""The Jinja sandbox and its bounds (docs/templating.md, Limits; docs/security.md, Templates).

A run file may come from a stranger's pull request, so every way a template could nest deeply, make a big
value or run for long is bounded, each bound checked before the work it bounds is done:

- depth: brackets, blocks and chains of unary operators are counted in the lexer's tokens before Jinja's
  recursive parser reads them (`check_depth`); the parsed tree's depth is measured without recursion before
  it is compiled (`check_tree_depth`);
- size: each filter, `str` method and operator that can make a value larger than its inputs computes the
  size of its result first; `{{ }}` outputs, `~` and the text of loop and macro bodies count against the value
  being rendered (1 MiB); the loader adds up a file's values (64 MiB) (`Budget`);
- time: each step of a loop, macro or call block costs the size of its body, and each character made or
  compared costs one unit of a per-file budget of work.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import _PassArg, generate_lorem_ipsum
from jinja2.visitor import NodeTransformer
from markupsafe import Markup

from intuned_runs.bounds import (
    NODE_COST,
    STEP_COST,
    STR_METHODS,
    Budget,
    EscapeFormatter,
    Formatter,
    LimitError,
    binop_size,
    ensure,
    filter_bounds,
    lipsum_size,
    size,
    take,
)

MAX_DEPTH = 50  # levels of brackets, blocks and unary operators
MAX_LOOPS = 16  # nested `for`: Python compiles at most 20 nested loops
TOO_DEEP = f"template nests too deeply (more than {MAX_DEPTH} levels, or {MAX_LOOPS} nested loops): flatten it"
_OPEN = frozenset({"lparen", "lbracket", "lbrace"})
_CLOSE = frozenset({"rparen", "rbracket", "rbrace"})
_BLOCKS = frozenset({"if", "for", "macro", "call", "filter", "with", "block", "autoescape"})
_UNARY = frozenset({"sub", "add"})


def check_depth(env: jinja2.Environment, source: str) -> None:
    """Refuse a template nesting deeper than MAX_DEPTH before Jinja's recursive parser reads it."""
    depth = loops = 0
    run = 0  # consecutive unary operators nest too: `- - - 1`, `not not x`
    block_start = False
    try:
        for _, kind, value in env.lexer.tokenize(source):  # lazily: a token at a time
            if kind in _OPEN or (block_start and kind == "name" and value in _BLOCKS):
                depth += 1
                loops += value == "for"
            elif kind in _CLOSE or (block_start and kind == "name" and value.startswith("end")):
                depth -= 1
                loops -= value == "endfor"
            run = run + 1 if kind in _UNARY or (kind == "name" and value == "not") else 0
            if depth + run > MAX_DEPTH or loops > MAX_LOOPS:
                raise LimitError(TOO_DEEP)
            block_start = kind == "block_begin"
    except jinja2.TemplateSyntaxError:
        return  # the parser reports it, in its own words


def check_tree_depth(tree: nodes.Node) -> None:
    """The parsed tree's depth, without recursion: `1 + 1 + … + 1` or `x|f|f|…|f` nest in the tree, not
    in brackets, and Jinja's compiler and Python's recurse through it. Three nodes per level, as a bracket
    level is often several (`[(-x)]`)."""
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > 3 * MAX_DEPTH:
            raise LimitError(TOO_DEEP)
        stack.extend((child, depth + 1) for child in node.iter_child_nodes())


class _Guard(NodeTransformer):
    """Charges the budget where work repeats: each step of a loop and each call of a macro or a call block
    costs its body (its text is output, its nodes work); `~` and comparisons are weighed before they run."""

    def _charged(self, node: Any) -> Any:
        self.generic_visit(node)
        text = sum(len(d.data) for child in node.body for d in child.find_all(nodes.TemplateData))
        count = sum(1 for child in node.body for _ in child.find_all(nodes.Node)) + len(node.body)
        cost = nodes.Filter(nodes.Const(None), "_charge", [nodes.Const(text), nodes.Const(count)], [], None, None)
        node.body.insert(0, nodes.ExprStmt(cost, lineno=node.lineno))
        return node

    visit_For = visit_Macro = visit_CallBlock = _charged

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return nodes.Filter(nodes.List(node.nodes), "_concat", [], [], None, None, lineno=node.lineno)

    def visit_Getitem(self, node: nodes.Getitem) -> nodes.Node:
        self.generic_visit(node)
        if not isinstance(node.arg, nodes.Slice):
            return node
        return nodes.Filter(node, "_weigh", [], [], None, None, lineno=node.lineno)  # a slice copies

    def visit_Compare(self, node: nodes.Compare) -> nodes.Node:
        self.generic_visit(node)
        node.expr = nodes.Filter(node.expr, "_weigh", [], [], None, None, lineno=node.lineno)
        for operand in node.ops:
            operand.expr = nodes.Filter(operand.expr, "_weigh", [], [], None, None, lineno=node.lineno)
        return node


def guard(tree: nodes.Template) -> nodes.Template:
    result: nodes.Template = _Guard().visit(tree)
    return result


class Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox with every growing filter, method and operator bounded."""

    intercepted_binops = frozenset(["*", "**", "+", "%"])

    def __init__(self, **options: Any) -> None:
        super().__init__(finalize=self._finalize, **options)
        self.budget = Budget()
        filters = self.filters
        bounds = filter_bounds()
        for name, function in list(filters.items()):
            filters[name] = self._counted(function, bounds.get(name), f"filter '{name}'")
        join = filters["join"]
        filters.update(
            join=functools.wraps(join)(
                lambda ctx, value, d="", attribute=None: join(ctx, take(value, str(d)), d, attribute)
            ),
            _charge=jinja2.pass_context(lambda context, _, text, count: self._charge(text, count)),
            _concat=self._concat,
            _weigh=jinja2.pass_context(lambda context, value: self._weigh(value)),
        )
        for name, test in list(self.tests.items()):
            self.tests[name] = self._counted(test, None, f"test '{name}'")  # type: ignore[arg-type]
        self.globals["lipsum"] = self._counted(generate_lorem_ipsum, lipsum_size, "lipsum()")

    def _counted(
        self, function: Callable[..., Any], bound: Callable[..., int] | None, culprit: str
    ) -> Callable[..., Any]:
        """`function`, refused when `bound` (of the same arguments) says its result would be too large;
        what it makes or reads is work."""

        passes = _PassArg.from_obj(function) is not None  # a context or environment comes first

        @functools.wraps(function)
        def counted(*args: Any, **kwargs: Any) -> Any:
            data = args[1:] if passes else args
            if bound is not None:
                ensure(bound(*data, **kwargs), culprit)
            self.budget.spend(sum(len(a) for a in data[:2] if isinstance(a, (str, list, tuple, dict))))
            result = function(*args, **kwargs)
            if isinstance(result, str):
                ensure(len(result), culprit)
                self.budget.spend(len(result))
            return result

        return counted

    def _finalize(self, value: Any) -> Any:
        self.budget.output(size(value))
        return value

    # The context argument keeps Jinja from calling these once at compile time, as it does filters of
    # constants: they must run at every step.
    def _charge(self, text: int, count: int) -> str:
        self.budget.spend(STEP_COST + NODE_COST * count)
        self.budget.output(text)
        return ""

    def _weigh(self, value: Any) -> Any:
        self.budget.spend(len(value) if isinstance(value, (str, list, tuple, dict)) else 1)
        return value

    def _concat(self, parts: list[Any]) -> str:
        ensure(sum(size(part) for part in parts), "'~'")  # before str(): `[s, s, s] ~ ''` would be large
        text = "".join(map(str, parts))
        self.budget.spend(len(text))
        return text

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        binop_size(operator, left, right)
        result = super().call_binop(context, operator, left, right)
        self._weigh(result)
        return result

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):
            name = getattr(__obj, "__name__", "")
            if name == "join" and args:
                args = (take(args[0], owner), *args[1:])
            bound = STR_METHODS.get(name)
            if bound is not None:
                ensure(bound(owner, *args, **kwargs), f"{name}()")
            __self.budget.spend(len(owner))
        return __self._weigh(super().call(__context, __obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        if super().wrap_str_format(value) is None:
            return None
        f_self: str = value.__self__
        is_format_map = value.__name__ == "format_map"

        def bounded(*args: Any, **kwargs: Any) -> str:
            if is_format_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one argument")
                kwargs, args = args[0], ()
            if isinstance(f_self, Markup):
                return type(f_self)(EscapeFormatter(self, escape=f_self.escape).vformat(f_self, args, kwargs))
            return str(Formatter(self).vformat(f_self, args, kwargs))

        return bounded
