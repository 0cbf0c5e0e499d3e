"""CI features: budgets (spec `limits:` and flags), diff and its gate, pre-commit hook."""
import json
import os

import pytest
import yaml
from typer.testing import CliRunner

from cnncalc.cli.app import app
from cnncalc.units import parse_quantity

from conftest import EXAMPLES, ROOT

runner = CliRunner()
RESNET50 = os.path.join(EXAMPLES, "resnet50.yaml")


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_quantities():
    assert parse_quantity("25M") == 25_000_000
    assert parse_quantity("4.1G") == 4_100_000_000
    assert parse_quantity("512MiB") == 512 * 2**20
    assert parse_quantity("2GB") == 2 * 10**9
    assert parse_quantity(1234) == 1234


SPEC = """input: 3x32x32
layers:
  - {name: conv, type: conv2d, out_channels: 16, kernel_size: 3, padding: 1}
  - {name: pool, type: maxpool2d, kernel_size: 2}
  - {type: flatten}
  - {name: fc, type: linear, out_features: 10}
limits:
  batch: 8
  max_params: 40K
  max_macs: 30M
  max_training_memory: 1KiB
  receptive_field: {pool: {min: 5, max: 100}}
  output_shape: {fc: [8, 11]}
"""


def test_spec_limits_located(tmp_path):
    f = tmp_path / "net.yaml"
    f.write_text(SPEC)
    out = run("validate", f)
    assert out.exit_code == 1
    params = 16 * 27 + 16 + 16 * 16 * 16 * 10 + 10
    # at the limits' batch of 8 the MACs are 8·(16·32·32·27 + 16·16·16·10) ≤ 30M: no max_macs problem
    assert json.loads(run("analyze", f, "-f", "json", "-b", "8").stdout)["totals"]["macs"] == \
        8 * (16 * 32 * 32 * 27 + 16 * 16 * 16 * 10)
    assert (f"{f}:9:15: error: max_params: {params:,} (41.4 K) exceeds the limit 40,000 (40 K) by "
            f"{params - 40000:,}") in out.stderr
    assert "max_macs" not in out.stderr
    assert f"{f}:11:24: error: max_training_memory: " in out.stderr
    assert " bytes (" in out.stderr.split("max_training_memory: ")[1].split("\n")[0]  # bytes, and readable
    assert "at batch 8, " in out.stderr  # the limits' own batch, said
    assert "receptive field of pool is 4×4, below the minimum 5" in out.stderr
    assert "output shape of fc is [8, 10], expected [8, 11]" in out.stderr


def test_budget_flags():
    out = run("analyze", RESNET50, "-f", "json", "--max-params", "25M", "--max-macs", "4.1G")
    assert out.exit_code == 1
    over = 25_557_032 - 25_000_000
    assert f"--max-params: 25,557,032 (25.6 M) exceeds the limit 25,000,000 (25 M) by {over:,} (557 K) (2.2%)" in out.stderr
    assert run("validate", RESNET50, "--max-params", "25MB").exit_code == 2  # bytes are no parameter count
    mem = run("validate", RESNET50, "--max-memory", "1kib")  # units in any case
    assert mem.exit_code == 1 and "--max-memory: " in mem.stderr
    assert "at batch 1, float32 exceeds the limit 1,024 bytes (1 KiB)" in mem.stderr
    assert "max-macs" not in out.stderr  # 4,089,184,256 ≤ 4.1G
    assert json.loads(out.stdout)["limits"][0]["message"].startswith("--max-params")
    assert run("validate", RESNET50, "--max-params", "26M").exit_code == 0
    assert run("validate", RESNET50, "--max-memory", "lots").exit_code == 2


BASE = """input: 3x16x16
layers:
  - {name: a, type: conv2d, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: b, type: relu}
  - {name: c, type: conv2d, out_channels: 8, kernel_size: 3, padding: 1}
  - {name: gone, type: relu}
"""


def test_diff_added_removed_changed_and_downstream(tmp_path):
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text(BASE)
    new.write_text(BASE.replace("out_channels: 8, kernel_size: 3, padding: 1}\n  - {name: b",
                                "out_channels: 16, kernel_size: 3, padding: 1}\n  - {name: b")
                   .replace("  - {name: gone, type: relu}\n", "  - {name: pool, type: maxpool2d, kernel_size: 2}\n"))
    out = run("diff", old, new, "-f", "json")
    assert out.exit_code == 0
    d = json.loads(out.stdout)
    assert d["added"] == ["pool"] and d["removed"] == ["gone"]
    changed = {c["name"]: c["changes"] for c in d["changed"]}
    assert changed["a"]["params"] == {"old": 8 * 27 + 8, "new": 16 * 27 + 16}
    assert changed["b"]["output_shape"] == {"old": [1, 8, 16, 16], "new": [1, 16, 16, 16]}  # propagates
    assert changed["c"]["params"] == {"old": 8 * 8 * 9 + 8, "new": 8 * 16 * 9 + 8}
    assert d["totals"]["params"]["delta"] == (16 * 27 + 16 + 8 * 16 * 9 + 8) - (8 * 27 + 8 + 8 * 8 * 9 + 8)


def test_diff_against_stored_report_and_gate(tmp_path):
    old, new, baseline = tmp_path / "old.yaml", tmp_path / "new.yaml", tmp_path / "baseline.json"
    old.write_text(BASE)
    new.write_text(BASE.replace("out_channels: 8, kernel_size: 3, padding: 1}\n  - {name: gone",
                                "out_channels: 9, kernel_size: 3, padding: 1}\n  - {name: gone"))
    baseline.write_text(run("analyze", old, "-f", "json").stdout)
    macs_old = 8 * 256 * 27 + 8 * 256 * 72
    macs_new = 8 * 256 * 27 + 9 * 256 * 72
    assert json.loads(baseline.read_text())["totals"]["macs"] == macs_old
    growth = (macs_new - macs_old) / macs_old * 100  # ≈ 6.5%: above the 5% gate, below 10%
    fail = run("diff", baseline, new, "--fail-on-increase", "macs=5%,params=0")
    assert fail.exit_code == 1
    assert f"macs grew by {macs_new - macs_old:,} (+{growth:.2f}%)" in fail.stderr
    assert run("diff", baseline, new, "--fail-on-increase", "macs=10%").exit_code == 0
    assert run("diff", baseline, new, "--fail-on-increase", "speed=1").exit_code == 2


def test_pre_commit_hook_definition():
    hooks = yaml.safe_load(open(os.path.join(ROOT, ".pre-commit-hooks.yaml")))
    assert hooks[0]["id"] == "cnncalc-validate" and hooks[0]["entry"] == "cnncalc validate"


def test_the_schema_accepts_the_units_the_parser_accepts(schema):
    import re

    pattern = schema["$defs"]["Limits"]["properties"]["max_params"]["anyOf"][1]["pattern"]
    for q in ("25M", "4.1G", "2GiB", "512mib", "1e3"):
        assert re.fullmatch(pattern, q), q  # JSON Schema patterns have no case flag


def _version(v: str) -> tuple[int, ...]:
    parts = [int(p) for p in v.split(".")]
    while parts and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def test_the_lowest_versions_job_pins_exactly_the_declared_minimums():
    """#24: .ci/constraints-lowest.txt pins the minimum pyproject.toml declares for each core (and test)
    dependency, and .ci/run installs with it, so no minimum is claimed that CI does not test."""
    import re

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as fh:
        project = tomllib.load(fh)["project"]
    declared = {}
    for req in project["dependencies"] + project["optional-dependencies"]["dev"]:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([\d.]+)", req)
        if m:
            declared[m[1].lower().replace("-", "_")] = _version(m[2])
    pins = {}
    with open(os.path.join(ROOT, ".ci", "constraints-lowest.txt")) as fh:
        for line in fh:
            if line.split("#")[0].strip():
                name, version = line.split("#")[0].strip().split("==")
                pins[name.lower().replace("-", "_")] = _version(version)
    assert {"typer", "rich", "pydantic", "pyyaml", "typing_extensions"} <= set(pins)
    for name, version in pins.items():
        assert declared.get(name) == version, (name, declared.get(name), version)
    with open(os.path.join(ROOT, ".ci", "run")) as fh:
        assert "-c .ci/constraints-lowest.txt" in fh.read()
