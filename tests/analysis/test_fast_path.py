"""The analysis' shortcuts (#30: the usual layer in one go, point-wise fields per channel kept
for the walk, slices and concats of whole runs) are the general path made quick: every example,
every case row and the per-channel constructs below give the same report, number for number,
with them and without them."""
import glob
import importlib
import json
import os

import pytest

import cnncalc

from conftest import EXAMPLES  # noqa: E402
from layer_cases import CASES, spec_text  # noqa: E402

walk = importlib.import_module("cnncalc.analysis.analyze")

#: fields per channel through slices, shuffles, concats of branches and point-wise layers on them,
#: on a permuted map and after a slice of a concat read by an element-wise merge
CHANNELS = """
input: 6x20x20
layers:
  - {name: a, type: conv2d, out_channels: 6, kernel_size: 3, padding: 1}
  - {name: b, type: conv2d, out_channels: 6, kernel_size: 5, padding: 2, inputs: [input]}
  - {name: c, type: concat, inputs: [a, b, input]}
  - {name: n, type: batchnorm2d}
  - {name: r, type: relu}
  - {name: s, type: channel_shuffle, groups: 3}
  - {name: h1, type: narrow, start: 1, length: 7}
  - {name: h2, type: narrow, start: 9, length: 7, inputs: [s]}
  - {name: m, type: add, inputs: [h1, h2]}
  - {name: c2, type: concat, inputs: [m, h1, m]}
  - {name: s2, type: channel_shuffle, groups: 3}
  - {name: p, type: permute, dims: [0, 2, 3, 1]}
  - {name: q, type: relu}
  - {name: pb, type: permute, dims: [0, 3, 1, 2]}
  - {name: t, type: narrow, start: 0, length: 5}
  - {name: g, type: global_avgpool}
"""


def _reports(text: str, file: str) -> tuple[str, str]:
    net = cnncalc.parse_spec(text, file)
    out = []
    for fast in (True, False):
        walk.FAST, walk.TRACE = fast, {}
        try:
            report = json.dumps(cnncalc.analyze(net).to_json(), default=str)
            out.append((report, walk.TRACE))  # and what the walk keeps of each tensor
        except cnncalc.CnnError as exc:
            out.append(("error: " + str(exc), {}))
        finally:
            walk.FAST, walk.TRACE = True, None
    return out[0], out[1]


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(EXAMPLES, "*.yaml"))), ids=os.path.basename)
def test_every_example_is_the_same_without_the_shortcuts(path):
    with open(path, encoding="utf-8") as fh:
        fast, general = _reports(fh.read(), path)
    assert fast == general


def test_every_case_row_and_the_per_channel_constructs_are_the_same_without_the_shortcuts():
    for case in CASES:
        fast, general = _reports(spec_text(case), "case.yaml")
        assert fast == general, case[0]
    fast, general = _reports(CHANNELS, "channels.yaml")
    assert '"exact": false' in fast[0] and fast[1]["channels"]  # (fields per channel are tracked)
    assert fast == general
