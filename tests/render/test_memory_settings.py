"""With --amp or --checkpoint, every format says which setting its memory figures are for."""
import pytest
from rich.console import Console

import cnncalc
from cnncalc.render.formats import to_markdown
from cnncalc.render.html import to_html
from cnncalc.render.terminal import print_table


def render(report, fmt):
    if fmt == "markdown":
        return to_markdown(report)
    if fmt == "html":
        return to_html(report)
    con = Console(record=True, width=200)
    print_table(report, con)
    return con.export_text()

SPEC = """input: 3x16x16
blocks:
  unit:
    layers:
      - {name: conv, type: conv2d, out_channels: 8, kernel_size: 3, padding: 1}
      - {name: relu, type: relu}
layers:
  - {block: unit, name: u1}
  - {block: unit, name: u2}
"""


@pytest.mark.parametrize("fmt", ["table", "markdown", "html"])
def test_amp_and_checkpoint_are_named_next_to_the_memory_figures(fmt):
    net = cnncalc.parse_spec(SPEC)
    report = cnncalc.analyze(net, amp="bf16", checkpoint="u1")
    text = render(report, fmt)
    assert "autocast bfloat16" in text and "checkpointing" in text and "u1: recomputes" in text
    plain = render(cnncalc.analyze(net), fmt)
    assert "autocast" not in plain and "checkpointing" not in plain
