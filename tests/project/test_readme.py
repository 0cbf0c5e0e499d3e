"""README's examples table is what cnncalc computes today."""
import os
import sys

from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "scripts"))


def test_readme_examples_table_is_current():
    from examples_table import table

    assert table() in open(os.path.join(ROOT, "README.md")).read()


def test_readme_spec_example_is_valid():
    import re

    import cnncalc

    block = re.search(r"```yaml\n(.*?)```", open(os.path.join(ROOT, "README.md")).read(), re.S).group(1)
    report = cnncalc.analyze(cnncalc.parse_spec(block, "README.md"))
    assert report.layer("head").shared_with == "stage1.0.conv" and report.layer("head").params == 0
    assert report.layer("merged").output_shape == (1, 32, 32, 32)
