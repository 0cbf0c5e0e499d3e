"""The one door to PyTorch: build a report's network as an nn.Module and prove the analysis.

Modules, each doing one thing and drawing nothing: `kit` (torch, imported on demand), `build`
(the network as a module), `device` (choice, memory, sync), `measure` (counts, peak memory,
timing), `probe` (receptive fields by gradients), `fold` (batch-norm folding), `profile` (per-layer
times against the roofline), `verify` (all of it, compared with the analysis). torch is imported
lazily inside functions, so importing this package is cheap and `analyze`/`validate` never pay for it.
"""
from __future__ import annotations

from cnncalc.backend.build import build_model
from cnncalc.backend.device import pick_device
from cnncalc.backend.fold import check_bn_folding
from cnncalc.backend.kit import kit
from cnncalc.backend.measure import LayerCheck, measure_counts, time_forward
from cnncalc.backend.probe import probe_model, probe_plan, probe_rf, probe_whole, probeable
from cnncalc.backend.verify import VerifyOptions, VerifyResult, compare, verify_report

__all__ = ["kit", "build_model", "pick_device", "check_bn_folding", "LayerCheck", "measure_counts", "time_forward",
           "probe_model", "probe_plan", "probe_rf", "probe_whole", "probeable", "VerifyResult", "compare",
           "verify_report", "VerifyOptions"]
