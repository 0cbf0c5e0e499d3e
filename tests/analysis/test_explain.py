"""--explain: every formula, once its numbers are substituted, evaluates to the reported value."""
import re

import pytest

from conftest import analyze_text
from layer_cases import CASES, spec_text


def evaluate(expr: str) -> int:
    """The explanation's arithmetic, read as Python (test-only): · × → *, ⌊a/b⌋ → a // b."""
    py = re.sub(r"\((last window|\d+ \w+ dropped).*\)", "", expr).replace("·", "*").replace("×", "*").replace("−", "-")
    py = re.sub(r"⌊\((.*?)\) / (\d+)⌋", r"((\1) // \2)", py)
    py = re.sub(r"⌈\((.*?)\) / (\d+)⌉", r"(-(-(\1) // \2))", py)
    return eval(py, {"__builtins__": {}})  # noqa: S307 - our own arithmetic strings, in a test


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_explained_formulas_evaluate_to_the_reported_numbers(case):
    report = analyze_text(spec_text(case))
    row = report.layers[-1]
    lines = row.layer.explain(row.ctx)
    by_name = {}
    for what, expr, value in lines:
        by_name[what] = value
        if "last window dropped" not in expr:
            assert evaluate(expr) == value, (what, expr)
    assert by_name["MACs"] == row.macs
    if row.params:
        assert by_name["params"] == row.params
    axes = [k for k in by_name if k.endswith("'")]
    if axes:
        assert [by_name[a] for a in axes] == list(row.output_shape[2:])
