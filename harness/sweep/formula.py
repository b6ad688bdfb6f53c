"""Arithmetic formulas over a point's settings, e.g. ``"1000 / delay_ms * batch_size"``.

A sweep file may model a figure (``[report.modelled] formula``) as plain arithmetic over the
point's numeric settings: numbers, names, ``+ - * / // % **`` and parentheses, nothing else
(no calls, no attributes), so a formula can never run code.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Mapping

from common.errors import ConfigError

_BINARY = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}


def parse_formula(text: str) -> ast.expr:
    """The formula's syntax tree; ConfigError for anything but arithmetic."""
    try:
        tree = ast.parse(text, mode="eval").body
    except SyntaxError:
        raise ConfigError(f"formula {text!r} is not arithmetic") from None
    for node in ast.walk(tree):
        allowed = (ast.BinOp, ast.UnaryOp, ast.Name, ast.Load, *_BINARY, *_UNARY)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
                and not isinstance(node.value, bool):
            continue
        if not isinstance(node, allowed):
            raise ConfigError(f"formula {text!r}: only numbers, setting names, + - * / // % ** "
                              "and parentheses are allowed")
    return tree


def formula_names(text: str) -> set[str]:
    """The setting names a formula reads."""
    return {node.id for node in ast.walk(parse_formula(text)) if isinstance(node, ast.Name)}


def evaluate(text: str, values: Mapping[str, float]) -> float | None:
    """The formula's value for these settings; None when a name has no numeric value or the
    arithmetic fails (a division by zero)."""

    def value(node: ast.expr) -> float:
        if isinstance(node, ast.Constant):
            return float(node.value)
        if isinstance(node, ast.Name):
            found = values.get(node.id)
            if isinstance(found, bool) or not isinstance(found, (int, float)):
                raise LookupError(node.id)
            return float(found)
        if isinstance(node, ast.UnaryOp):
            return _UNARY[type(node.op)](value(node.operand))
        assert isinstance(node, ast.BinOp)
        return _BINARY[type(node.op)](value(node.left), value(node.right))

    try:
        return value(parse_formula(text))
    except (LookupError, ArithmeticError):
        return None
