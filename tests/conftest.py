import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")
SHARED = os.path.join(os.path.dirname(ROOT), "shared")
sys.path.insert(0, os.path.dirname(__file__))


def analyze_text(text: str, **kw):
    import cnncalc

    return cnncalc.analyze(cnncalc.parse_spec(text, "test.yaml"), **kw)


@pytest.fixture
def analyze_yaml():
    return analyze_text
