"""The allocator figures of `calibrate --device cuda` (backend/allocator.py). No GPU here or in CI:
the arithmetic is pinned by hand, the reference network by hand, and off CUDA nothing is claimed."""
from __future__ import annotations

import json

import pytest

import cnncalc
from cnncalc.backend.allocator import REFERENCE, REFERENCE_BATCH, figures, peaks_around


def test_figures_by_hand():
    # a step whose allocator peaked at 800 MiB allocated and 1,000 MiB reserved: 25% over; after it 310 MiB stay
    # allocated where params, buffers, Adam state and input are 300 MiB: 10 MiB of cuBLAS workspace, plus the
    # operators' 6 MiB of transient workspace at the peak; of 80 GiB, 78 GiB are free while 1,000 MiB are
    # reserved: 1,048 MiB are the context and other libraries
    MiB, GiB = 2**20, 2**30
    f = figures(800 * MiB, 1000 * MiB, 310 * MiB, 300 * MiB, 6 * MiB, 80 * GiB, 78 * GiB, 1000 * MiB)
    assert f == {"allocator_overhead_share": 1000 / 800 - 1, "workspace_bytes": 6 * MiB + 10 * MiB,
                 "context_bytes": 2 * GiB - 1000 * MiB}
    # never negative: fewer bytes allocated after the step than known (a tensor freed early), other processes gone
    assert figures(0, 0, 100, 200, 0, 10, 10, 5) == {"allocator_overhead_share": 0.0, "workspace_bytes": 0,
                                                     "context_bytes": 0}


def test_reference_network_by_hand():
    r = cnncalc.analyze(cnncalc.parse_spec(REFERENCE), REFERENCE_BATCH)
    convs = 3 * 64 * 7 * 7 + 64 * 64 * 3 * 3 + 64 * 128 * 3 * 3 + 128 * 256 * 3 * 3 + 256 * 512
    norms = 2 * (64 + 64 + 128 + 256)
    assert r.totals["params"] == convs + norms + 512 * 1000 + 1000
    assert tuple(r.layers[-1].output_shape) == (REFERENCE_BATCH, 1000)


def test_off_cuda_nothing_is_measured():
    torch = pytest.importorskip("torch")
    from cnncalc.backend.allocator import measure_allocator
    from cnncalc.backend.kit import kit

    with peaks_around(torch, torch.device("cpu")) as seen:
        torch.ones(4)
    assert seen == {"allocated_bytes": None, "reserved_bytes": None}
    out = measure_allocator(kit(), torch.device("cpu"))
    assert out["allocator_overhead_share"] is None and out["workspace_bytes"] is None and out["context_bytes"] is None
    assert "CUDA only" in out["allocator_reference"]["note"]
    json.dumps(out)
