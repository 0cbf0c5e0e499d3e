"""One status per number (#26): exact / estimate / not checked with a reason code, one vocabulary
for the table's `~`, the JSON, verify's verdict and the HTML; the old markers (RF `exact`,
`start_exact`, memory `not_judged`, `rf_note`) are derived from it and agree with it."""
import glob
import json

import pytest

import cnncalc
from cnncalc.analysis.status import EXACT, LEVELS, REASONS, Status, estimate, not_checked
from cnncalc.render.columns import rf_size_text

from conftest import EXAMPLES, analyze_text

UPSAMPLED_MERGE = ("input: 1x12\nlayers:\n  - {name: c, type: conv1d, out_channels: 1, kernel_size: 3}\n"
                   "  - {name: up, type: upsample, scale_factor: 2}\n"
                   "  - {name: a, type: conv1d, out_channels: 1, kernel_size: 3, padding: [[1, 0]], inputs: [up]}\n"
                   "  - {name: b, type: conv1d, out_channels: 1, kernel_size: 3, padding: [[0, 1]], inputs: [up]}\n"
                   "  - {name: m, type: add, inputs: [a, b]}\n"
                   "  - {name: after, type: conv1d, out_channels: 1, kernel_size: 3}\n")


def test_the_vocabulary_admits_only_its_own_words():
    assert LEVELS == ("exact", "estimate", "not_checked")
    for bad in (("exact", "field_inexact"), ("estimate", None), ("not_checked", "no_such_code"), ("sure", None)):
        with pytest.raises(ValueError):
            Status(*bad)
    assert EXACT.marker == "" and estimate("field_start").marker == "~" and not_checked("probe_limit").marker == ""
    assert estimate("memory_rule").detail == REASONS["memory_rule"]  # the code's words when none are given
    assert not_checked("switched_off", "x").to_json() == {"status": "not_checked", "reason": "switched_off", "detail": "x"}


def test_an_estimate_names_the_layer_where_windows_stopped_being_alike():
    # after ×2 nearest upsampling, units pair up: windows offset by one unit (a, b) cover 2 or 3
    # input pixels depending on the unit, so their merge m and all after it are estimates; c, up,
    # a and b are exact (each of their windows is alike)
    r = analyze_text(UPSAMPLED_MERGE)
    levels = {row.name: r.field_status(row)["receptive_field"].level for row in r.layers}
    assert levels == {"c": "exact", "up": "exact", "a": "exact", "b": "exact", "m": "estimate", "after": "estimate"}
    for name in ("m", "after"):
        status = r.field_status(r.layer(name))["receptive_field"]
        assert status.reason == "field_inexact" and "'m' (add)" in status.detail
        assert rf_size_text(r.layer(name).receptive_field).startswith("~")
    assert not rf_size_text(r.layer("a").receptive_field).startswith("~")


def test_an_uneven_start_is_its_own_estimate():
    # transposed k2 s2 then conv k3 s2: size and jump exact, the first unit's centre is not
    r = analyze_text("input: 1x16\nlayers:\n  - {type: conv_transpose1d, out_channels: 1, kernel_size: 2, stride: 2}\n"
                     "  - {type: conv1d, out_channels: 1, kernel_size: 3, stride: 2}\n")
    status = r.field_status(r.layers[1])
    assert status["receptive_field"] == EXACT
    assert (status["receptive_field_start"].level, status["receptive_field_start"].reason) == ("estimate", "field_start")


def test_memory_totals_are_estimates_exactly_where_a_rule_says_so():
    exact = analyze_text("input: 3x8x8\nlayers:\n  - {type: conv2d, out_channels: 4, kernel_size: 3}\n")
    assert set(s.level for s in exact.totals_status().values()) == {"exact"}
    rough = analyze_text("input: 8x4\nlayers:\n  - {type: rmsnorm, normalized_shape: 4}\n")
    status = rough.totals_status()
    assert status["params"] == EXACT and status["macs"] == EXACT
    for key in ("inference_peak_activation_bytes", "inference_memory_bytes", "training_memory_bytes",
                "training_saved_activation_bytes"):
        assert (status[key].level, status[key].reason) == ("estimate", "memory_rule") and "rmsnorm" in status[key].detail


@pytest.mark.parametrize("path", sorted(glob.glob(f"{EXAMPLES}/*.yaml")), ids=lambda p: p.rsplit("/", 1)[-1])
def test_the_old_markers_are_the_status(path):
    """JSON's receptive_field.exact and start_exact, and the table's `~`, say what the status says."""
    report = cnncalc.analyze(path)
    data = json.loads(json.dumps(report.to_dict()))
    assert set(data["totals_status"]) == {k for k, v in data["totals"].items() if isinstance(v, int)}
    for row, layer in zip(report.layers, data["layers"]):
        if layer["receptive_field"] is None:
            assert layer["status"] == {}
            continue
        size, start = layer["status"]["receptive_field"], layer["status"]["receptive_field_start"]
        assert layer["receptive_field"]["exact"] == (size["status"] == "exact")
        assert all(layer["receptive_field"]["start_exact"]) == (start["status"] == "exact")
        assert rf_size_text(row.receptive_field).startswith("~") == (size["status"] == "estimate")


def test_estimates_are_marked_in_the_totals_and_explained_in_the_html():
    from cnncalc.render.columns import COLUMNS, totals_rows
    from cnncalc.render.html import layer_table

    rough = dict(totals_rows(analyze_text("input: 8x4\nlayers:\n  - {type: rmsnorm, normalized_shape: 4}\n")))
    assert rough["inference memory"].startswith("~") and rough["training step memory"].startswith("~")
    assert not rough["parameter memory"].startswith("~")
    exact = dict(totals_rows(analyze_text("input: 3x8x8\nlayers:\n  - {type: conv2d, out_channels: 4, kernel_size: 3}\n")))
    assert not exact["inference memory"].startswith("~")
    page = layer_table(analyze_text(UPSAMPLED_MERGE), list(range(len(COLUMNS))))
    marked = [line.split("</td>")[1] for line in page.splitlines() if "from &#x27;m&#x27; (add) on" in line]
    assert marked == ["<td>m", "<td>after"]  # the merge and what follows it
    assert "data-status" not in next(line for line in page.splitlines() if "<td>c</td>" in line)


def test_csv_and_markdown_carry_the_field_status():
    import csv
    import io

    from cnncalc.render.formats import to_csv, to_markdown

    report = analyze_text(UPSAMPLED_MERGE)
    rows = {r["name"]: r for r in csv.DictReader(io.StringIO(to_csv(report))) if r["index"]}
    assert {n: r["rf_status"] for n, r in rows.items()} == {
        "c": "exact", "up": "exact", "a": "exact", "b": "exact", "m": "estimate", "after": "estimate"}
    table = to_markdown(report)
    assert "~" in next(line for line in table.splitlines() if "| m |" in line or "| m " in line)
