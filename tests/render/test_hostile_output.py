"""Issue #25 §1–2: foreign text never forges an output line, a CI workflow command, markup, a
Markdown/HTML element, a Mermaid directive, mathtext or a non-JSON number.

The CLI tests are property-based: newline-like separators followed by ``::`` workflow commands,
bidi and format characters, placed in every spec position that an error message or a report
echoes, run through analyze, validate (text, github) and diff."""
from __future__ import annotations

import html
import json
import os
import re
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cnncalc.cli import app
from cnncalc.safe import Plain, visible

from conftest import ROOT

LENET = os.path.join(ROOT, "examples", "lenet5.yaml")

# The Unicode Bidi_Control characters (PropList.txt), and other format characters, written out by
# hand: the code decides by general category, this list is the independent source.
BIDI_CONTROL = ["\u061c", "\u200e", "\u200f", *map(chr, range(0x202A, 0x202F)), *map(chr, range(0x2066, 0x206A))]
FORMAT = ["\u00ad", "\u200b", "\u200c", "\u200d", "\u2060", "\u2061", "\u2064", "\ufeff", "\ufff9", "\U000e0001"]
CONTROL = [*map(chr, range(0, 0x20)), "\x7f", *map(chr, range(0x80, 0xA0))]  # C0 (tab and newline too), DEL, C1
SEPARATORS = ["\u2028", "\u2029"]


def test_visible_escapes_controls_bidi_format_and_separators():
    for c in BIDI_CONTROL + FORMAT + CONTROL + SEPARATORS:
        out = visible(f"a{c}b")
        assert c not in out and out.startswith("a\\") and out.endswith("b") and out.isprintable(), hex(ord(c))
    assert visible("a\nb") == "a\\x0ab" and visible("\u061c") == "\\u061c" and visible("\U000e0001") == "\\U000e0001"
    assert visible("conv2d_1 · 1×6×28×28 – ok") == "conv2d_1 · 1×6×28×28 – ok"  # printable text unchanged


def test_visible_leaves_one_line_and_problems_use_it():
    from cnncalc.errors import Problem

    every = "".join(map(chr, range(0x110000)))
    shown = visible(every)
    # nothing a terminal or CI log reads as a control, format or line break is left in it
    assert not [c for c in shown if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp")]
    assert len(shown.splitlines()) == 1
    p = Problem("bad\n::error::x", file="a\nb.yaml", line=3, col=4, layer="l\u202e", index=0)
    assert str(p) == "a\\x0ab.yaml:3:4: l\\u202e (#0): bad\\x0a::error::x"


def test_plain_is_printed_by_rich_without_markup():
    from rich.console import Console
    from rich.table import Table

    con = Console(record=True, width=200, color_system=None)
    t = Table()
    t.add_column("x")
    t.add_row(Plain("[/] [link=https://e.test]y[/link] [red]z"))  # a str here would be read as markup
    con.print(t)
    assert "[/] [link=https://e.test]y[/link] [red]z" in con.export_text()


# ---- CLI: newline + '::' payloads in every echoed position ------------------------------------------
BREAKS = ["\n", "\r", "\r\n", "\x0b", "\x0c", "\x1c", "\x85", "\u2028", "\u2029"]
COMMANDS = ["::error file=x,line=1::pwned", "::add-mask::x", "::warning::w", "::stop-commands::t"]
payloads = st.builds(lambda pre, br, cmd, tail: pre + br + cmd + tail,
                     st.sampled_from(["", "x", "conv2d", "a b"]), st.sampled_from(BREAKS), st.sampled_from(COMMANDS),
                     st.sampled_from(["", "\u061c", "\u2060", "\x1b]8;;x\x07", "\n::error::again", "[/]"]))


def _q(s: str) -> str:
    return json.dumps(s)  # a JSON string is a YAML double-quoted scalar


POSITIONS = {  # spec text with the payload where an error message or a report echoes it
    "type": lambda p: f"input: 3x8x8\nlayers:\n  - {{type: {_q(p)}, out_channels: 4}}\n",
    "expression": lambda p: f"input: 3x8x8\nlayers:\n  - {{type: conv2d, out_channels: {_q('${4 + ' + p + '}')}, "
                            f"kernel_size: 1}}\n",
    "field key": lambda p: f"input: 3x8x8\nlayers:\n  - {{type: conv2d, out_channels: 4, kernel_size: 1, {_q(p)}: 1}}\n",
    "inputs": lambda p: f"input: 3x8x8\nlayers:\n  - {{type: conv2d, out_channels: 4, kernel_size: 1, "
                        f"inputs: [{_q(p)}]}}\n",
    "layer name": lambda p: f"input: 3x8x8\nlayers:\n  - {{type: relu, name: {_q(p)}}}\n",
    "argument": lambda p: f"input: 3x8x8\nlayers:\n  - {{type: conv2d, out_channels: {_q('$' + p)}, kernel_size: 1}}\n",
    "network name": lambda p: f"name: {_q(p)}\ninput: 3x8x8\nlayers:\n  - {{type: relu}}\n",
}


def _lines(out) -> list[str]:
    return (out.stdout + "\n" + out.stderr).splitlines()  # splitlines: every line break Python knows


def _assert_clean(out, annotations: int = 0) -> None:
    text = out.stdout + out.stderr
    assert "Traceback" not in text and out.exception is None or isinstance(out.exception, SystemExit), text
    forged = [line for line in _lines(out) if line.lstrip().startswith("::")]
    assert len(forged) == annotations, forged
    assert not [c for c in text if c != "\n" and unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp")], text


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(position=st.sampled_from(sorted(POSITIONS)), payload=payloads)
def test_no_payload_forges_a_line_in_analyze_or_validate(tmp_path, position, payload):
    spec = tmp_path / "net.yaml"
    spec.write_text(POSITIONS[position](payload), encoding="utf-8")
    runner = CliRunner()
    for args in (["analyze", str(spec)], ["analyze", str(spec), "-f", "markdown"], ["validate", str(spec)],
                 ["validate", str(spec), "--format", "text"]):
        _assert_clean(runner.invoke(app, args))
    problems = json.loads(runner.invoke(app, ["validate", str(spec), "--format", "json"]).stdout)[0]["problems"]
    github = runner.invoke(app, ["validate", str(spec), "--format", "github"])
    _assert_clean(github, annotations=len(problems))  # one genuine annotation per problem, nothing else
    assert all(re.fullmatch(r"::(error|warning) file=[^:,]+(,line=\d+)?(,col=\d+)?::.*", line)
               for line in github.stdout.splitlines() if line.startswith("::")), github.stdout


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=payloads, where=st.sampled_from(["layer", "network", "inputs"]))
def test_no_payload_in_a_stored_report_forges_a_line_in_diff(tmp_path, payload, where):
    report = json.loads(CliRunner().invoke(app, ["analyze", LENET, "-f", "json"]).stdout)
    if where == "layer":
        report["layers"][3]["name"] = payload  # removed on one side, added on the other
    elif where == "network":
        report["name"] = payload
    else:
        report["layers"][4]["inputs"] = [payload]
    stored = tmp_path / "old.json"
    stored.write_text(json.dumps(report), encoding="utf-8")
    for args in (["diff", str(stored), LENET], ["diff", LENET, str(stored)], ["diff", str(stored), LENET, "-f", "json"],
                 ["diff", str(stored), LENET, "--fail-on-increase", "params=0"]):
        out = CliRunner().invoke(app, args)
        _assert_clean(out)
        if where == "layer" and "json" not in args:
            assert "no layer changed" not in out.stdout  # the renamed layer shows as removed and added


def test_columns_usage_error_is_one_visible_line():
    out = CliRunner().invoke(app, ["analyze", LENET, "--columns", "name,\x1b[31mred\n::error::x\u2060"])
    assert out.exit_code == 2
    _assert_clean(out)
    assert "\\x1b[31mred\\x0a::error::x\\u2060" in out.stderr.replace("\n", "").replace("│", "").replace(" ", "")


# ---- Markdown, Mermaid, matplotlib ------------------------------------------------------------------
HOSTILE_TEXT = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "# heading", "[x](javascript:alert(1))",
                "a|b", "`code`", "*em* _em_ ~~del~~", "$x^2$", "&amp;", "\\", "![i](http://e.test/i.png)",
                "<a href='javascript:1'>l</a>"]
hostile_text = st.lists(st.sampled_from(HOSTILE_TEXT + ["plain", " ", "\n", "\u061c"]), min_size=1, max_size=4).map("".join)


def _peaks(tmp_path, device: str) -> str:
    path = tmp_path / "peaks.json"
    path.write_text(json.dumps({"flops_per_s": 1e11, "bytes_per_s": 1e10, "overhead_s": 5e-6, "device": device,
                                "dtype": "float32"}))
    return str(path)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=hostile_text, device=hostile_text)
def test_markdown_renders_foreign_text_as_text(tmp_path, name, device):
    MarkdownIt = pytest.importorskip("markdown_it").MarkdownIt  # rich's own Markdown parser

    spec = tmp_path / "net.yaml"
    spec.write_text(f"name: {_q(name)}\ninput: 3x8x8\nlayers:\n  - {{type: conv2d, out_channels: 4, kernel_size: 1}}\n")
    out = CliRunner().invoke(app, ["analyze", str(spec), "-f", "markdown", "--peaks", _peaks(tmp_path, device)])
    assert out.exit_code == 0, out.output
    rendered = MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(out.stdout)  # raw HTML allowed
    tags = set(re.findall(r"<([a-z0-9]+)", rendered))
    assert tags <= {"h2", "table", "thead", "tbody", "tr", "th", "td", "p", "strong", "ul", "li"}, tags
    assert rendered.count("<h2>") == 1
    heading = re.search(r"<h2>(.*)</h2>", rendered)
    # the very characters, shown, not interpreted
    assert heading is not None and html.unescape(heading.group(1)) == visible(name).strip()
    predicted = re.search(r"<td>predicted time</td>\s*<td>(.*?)</td>", rendered)
    # the device's first 100 characters are kept
    assert predicted is not None and f"lower bound on {visible(device[:100])}:" in html.unescape(predicted.group(1))
    for table in re.findall(r"<table>.*?</table>", rendered, re.S):  # no cell split off or added
        counts = {len(re.findall(r"<t[hd][ >]", row)) for row in re.findall(r"<tr>.*?</tr>", table, re.S)}
        assert len(counts) == 1, counts


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=hostile_text | st.sampled_from(["%%{init: {'theme': 'dark'}}%%", "x\n%%{init: {}}%%\nclick n1 call x()",
                                            'a"] --> n0["b', "%% comment"]))
def test_mermaid_labels_and_comment_hold_no_directive(tmp_path, name):
    spec = tmp_path / "net%%{init}%%.yaml"
    spec.write_text(f"name: {_q(name)}\ninput: 3x8x8\nlayers:\n  - {{type: conv2d, out_channels: 4, kernel_size: 1}}\n"
                    "  - {type: relu}\n")
    out = CliRunner().invoke(app, ["analyze", str(spec), "-f", "mermaid"])
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    assert lines[0].startswith("%% ") and "%" not in lines[0][3:] and "%" not in "\n".join(lines[1:])
    assert lines[1] == "flowchart TD" and len(lines) == 2 + 3 + 2  # the comment, the header, 3 nodes, 2 edges
    for line in lines[2:5]:
        assert re.fullmatch(r'  n\d(\(\["[^"]*"\]\)|\["[^"]*"\])', line), line  # one quoted label, never broken out
    assert lines[5:] == ["  n0 --> n1", "  n1 --> n2"]


@pytest.mark.slow
def test_figure_title_with_dollars_is_plain_text(tmp_path):
    pytest.importorskip("matplotlib")
    from cnncalc.render.figure import plain_text

    assert plain_text("a$b$c\n") == "a\\$b\\$c\\x0a"
    for name in ("$", "cost $5 and $6", "$\\frac{1}{$", "$x^2$"):
        spec = tmp_path / "net.yaml"
        spec.write_text(f"name: {_q(name)}\ninput: 3x8x8\nlayers:\n  - {{type: conv2d, out_channels: 4, kernel_size: 1}}\n")
        png = tmp_path / "x.png"
        out = CliRunner().invoke(app, ["plot", str(spec), "-o", str(png)])
        assert out.exit_code == 0 and png.stat().st_size > 0, (name, out.output)


# ---- numbers: peaks files and stored reports ----------------------------------------------------------
@pytest.mark.parametrize("key", ["flops_per_s", "bytes_per_s", "overhead_s", "cache_bytes_per_s", "cache_bytes"])
@pytest.mark.parametrize("value", ["5e-324", "NaN", "Infinity", "-Infinity", "1e999", "-1", "1e31", "true", '"1e9"',
                                   "1" + "0" * 400])
def test_peaks_file_with_absurd_numbers_is_refused_at_the_door(tmp_path, key, value):
    good = {"flops_per_s": "1e11", "bytes_per_s": "1e10", "overhead_s": "5e-6", "cache_bytes_per_s": "1e11",
            "cache_bytes": "1048576"}
    good[key] = value
    path = tmp_path / "peaks.json"
    path.write_text("{" + ", ".join(f'"{k}": {v}' for k, v in good.items()) + "}")
    for fmt in ("json", "table"):
        out = CliRunner().invoke(app, ["analyze", LENET, "--peaks", str(path), "-f", fmt])
        assert out.exit_code == 1 and out.stdout == "", out.output
        assert out.stderr.startswith(f"{path}: error: not a cnncalc peaks file") and "Traceback" not in out.output


def test_predictions_at_the_edges_of_the_accepted_range_stay_finite_json(tmp_path):
    path = tmp_path / "peaks.json"
    for flops, rate, overhead in ((1, 1, 1e3), (1e30, 1e30, 1e-12)):
        path.write_text(json.dumps({"flops_per_s": flops, "bytes_per_s": rate, "overhead_s": overhead}))
        out = CliRunner().invoke(app, ["analyze", LENET, "--peaks", str(path), "-f", "json"])
        assert out.exit_code == 0, out.output
        data = json.loads(out.stdout, parse_constant=lambda c: pytest.fail(f"{c} in the JSON output"))
        macs = 6 * 28 * 28 * 25 + 16 * 10 * 10 * 6 * 25 + 400 * 120 + 120 * 84 + 84 * 10  # lenet5, by hand
        assert data["totals"]["flops"] == 2 * macs and data["totals"]["predicted_s"] >= 2 * macs / flops


@pytest.mark.parametrize("total", ["NaN", "Infinity", "-Infinity", "1e999", "1" + "0" * 400])
def test_stored_report_with_non_finite_or_huge_numbers_is_refused(tmp_path, total):
    for field in ("params", "macs"):
        report = json.loads(CliRunner().invoke(app, ["analyze", LENET, "-f", "json"]).stdout)
        report["totals"][field] = "@@"
        stored = tmp_path / "old.json"
        stored.write_text(json.dumps(report).replace('"@@"', total))
        for extra in ([], ["-f", "json"], ["--fail-on-increase", "params=0"]):
            out = CliRunner().invoke(app, ["diff", str(stored), LENET, *extra])
            assert out.exit_code == 1 and out.stdout == "", out.output
            assert out.stderr.startswith(f"{stored}: error: not a cnncalc JSON report") and "Traceback" not in out.output
