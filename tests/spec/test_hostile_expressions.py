"""Issue #25 §4 and §6: ${…} expressions cannot be made to compute huge numbers (round's digits,
int() of huge floats, repeated multiplication) nor slip a number out of range past the check
(constants, unary minus, conditionals, arguments, function results). Each is a located error,
exit 1, decided fast."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cnncalc.cli import app

LIMIT = 2**62  # cnncalc.spec.subst.MAX_VALUE, restated: the contract under test
EXTREME = ["0", "1", "-1", "0.5", "2", "7", "4611686018427387904", "4611686018427387905", "99999999999", "-99999999999",
           "100000000000000000000", "1e308", "1.7976931348623157e308", "1e999", "5e-324", "1e300", "2.5", "30", "31",
           "-30", "-31", "big", "huge", "inf", "w", "true"]
FUNCTIONS = ["min", "max", "round", "floor", "ceil", "int", "float", "abs", "make_divisible"]
ARGS = "{'big': 10**30, 'huge': 1e300, 'inf': float('inf'), 'w': 0.5}"  # the arguments the expressions see

atom = st.sampled_from(EXTREME)
term = st.one_of(
    atom,
    atom.map(lambda a: f"-{a}"),
    atom.map(lambda a: f"-(-{a})"),
    st.tuples(atom, atom).map(lambda t: f"{t[0]} if true else {t[1]}"),
    st.tuples(atom, atom).map(lambda t: f"{t[0]} if false else {t[1]}"),
    st.tuples(atom, st.integers(2, 60)).map(lambda t: "*".join([t[0]] * t[1])[:190]),  # growth by repetition
    st.tuples(st.sampled_from(FUNCTIONS), st.lists(atom, min_size=1, max_size=3)).map(
        lambda t: f"{t[0]}({', '.join(t[1])})"),
)
expression = st.one_of(
    term,
    st.tuples(st.sampled_from(FUNCTIONS), st.lists(term, min_size=1, max_size=3)).map(
        lambda t: f"{t[0]}({', '.join(t[1])})"),
    st.tuples(term, st.sampled_from(["+", "-", "*", "/", "//", "%"]), term).map(lambda t: f"({t[0]}) {t[1]} ({t[2]})"),
).filter(lambda e: len(e) <= 200)

RUNNER = f"""
import json, sys, time
from cnncalc.spec.subst import SubstError, evaluate
args = {ARGS}
out = []
for e in json.load(sys.stdin):
    t0 = time.perf_counter()
    try:
        v = evaluate(e, args)
        kind = 'value'
        v = repr(v) if isinstance(v, float) else v
    except SubstError as exc:
        kind, v = 'error', str(exc)
    except Exception as exc:  # anything else is what the test looks for
        kind, v = 'escaped', f'{{type(exc).__name__}}: {{exc}}'
    out.append([e, kind, v, time.perf_counter() - t0])
print(json.dumps(out))
"""


@settings(max_examples=4, deadline=None)
@given(st.lists(expression, min_size=150, max_size=150))
def test_every_generated_extreme_expression_is_in_range_or_refused_fast(exprs):
    """A separate process with a timeout: a bomb (10^(10^11)) would hang this one, not fail it."""
    done = subprocess.run([sys.executable, "-c", RUNNER], input=json.dumps(exprs), capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    for expr, kind, value, seconds in json.loads(done.stdout):
        assert seconds < 1.0, (expr, seconds)
        assert kind != "escaped", (expr, value)
        if kind == "value":
            number = float(value) if isinstance(value, str) else value
            assert isinstance(number, (int, float)) and abs(number) <= LIMIT, (expr, value)
        else:
            assert "'${" in value, (expr, value)  # the message quotes the expression


# the classes of the issue, each at the CLI: a located error (file:line:col), exit 1, within a second
@pytest.mark.parametrize("expr", [
    "round(5, -99999999999)", "round(5, 99999999999)", "round(5, -31)", "round(1.5, 1e300)", "round(7, 0.5)",
    "-1e999", "1e999 if true else 0", "0 if false else -1e999", "1e308*10", "int(1e300)", "int(1e999)",
    "float(-1e999)", "abs(-1e999)", "max(1e999, 1)", "min(-1e999, 1)", "make_divisible(1e300)",
    "make_divisible(8, 0)", "make_divisible(8, -8)", "-4611686018427387905", "4611686018427387905 if true else 1",
    "*".join(["99"] * 40), "floor(1e300)", "ceil(-1e300)", "-(-(-1e999))",
])
def test_expression_bombs_and_out_of_range_values_are_located_errors(expr):
    text = f"input: 3x8x8\nlayers:\n  - {{type: conv2d, kernel_size: 1, out_channels: '${{{expr}}}'}}\n"
    t0 = time.perf_counter()
    out = CliRunner().invoke(app, ["analyze", "-"], input=text)
    assert time.perf_counter() - t0 < 10.0  # bounded (a bomb would run for minutes), not a timing test
    assert out.exit_code == 1 and "Traceback" not in out.output, out.output
    assert re.match(r"[^:\n]*:3:\d+: error: .*\$\{", out.stderr), out.stderr


def test_arguments_out_of_range_are_refused_like_constants():
    for value in ("1.0e+999", "-.inf", "100000000000000000000000"):
        text = f"args: {{w: {value}}}\ninput: 3x8x8\nlayers:\n  - {{type: conv2d, kernel_size: 1, out_channels: '${{w * 1}}'}}\n"
        out = CliRunner().invoke(app, ["analyze", "-"], input=text)
        assert out.exit_code == 1 and re.match(r"[^:\n]*:\d+:\d+: error: ", out.stderr), (value, out.output)


def test_in_range_results_are_unchanged():
    from cnncalc.spec.subst import evaluate

    # hand arithmetic: the checks refuse nothing a network needs
    assert evaluate("round(1234, -2)", {}) == 1200 and evaluate("round(2.675, 2)", {}) == round(2.675, 2)
    assert evaluate("-4611686018427387904", {}) == -(2**62)
    assert evaluate("make_divisible(16 * 0.75)", {}) == 16 and evaluate("int(64 * 0.5)", {}) == 32
    assert evaluate("1e3 if true else 1e999", {}) == 1000  # the branch not taken is not evaluated
