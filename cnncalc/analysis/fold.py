"""Batch-norm folding: which (conv, bn) pairs fold, and the totals once folded."""
from __future__ import annotations

from math import prod

from cnncalc.analysis.report import LayerReport, Report


def bn_folds(report: Report) -> list[tuple[LayerReport, LayerReport]]:
    """(conv, batchnorm) pairs that inference can fold: a layer that `folds()` (batch norm with
    running statistics) whose only input is an unshared layer that `absorbs_affine`
    (conv/linear) and feeds nothing else."""
    consumers: dict[str, int] = {}
    for r in report.layers:
        for i in r.inputs:
            consumers[i] = consumers.get(i, 0) + 1
    for o in report.outputs:
        consumers[o] = consumers.get(o, 0) + 1
    pairs = []
    for r in report.layers:
        if r.layer.folds() and not r.shared_with and len(r.inputs) == 1 and r.inputs[0] != "input":
            conv = report.layer(r.inputs[0])
            if conv.layer.absorbs_affine and consumers.get(conv.name) == 1 and not conv.shared_with:
                pairs.append((conv, r))
    return pairs


def fused_totals(report: Report) -> dict[str, int]:
    """Inference totals after folding each batch norm into the conv before it:
    W' = W·γ/√(σ²+ε), b' = (b − μ)·γ/√(σ²+ε) + β. The BN's params and buffers go; a conv
    without bias gains one (C_out); MACs are unchanged; the BN's element-wise work becomes the
    conv's bias add (1 per element instead of 2)."""
    t = report.totals
    pairs = bn_folds(report)
    gained = sum(bn.output_shape[1] for conv, bn in pairs if "bias" not in conv.weights)
    return {"folded": len(pairs),
            "params": t["params"] - sum(bn.params for _, bn in pairs) + gained,
            "buffers": t["buffers"] - sum(bn.buffers for _, bn in pairs),
            "macs": t["macs"], "flops": t["flops"],
            "elementwise_ops": t["elementwise_ops"] - sum(bn.elementwise_ops for _, bn in pairs)
            + sum(prod(bn.output_shape) for conv, bn in pairs if "bias" not in conv.weights)}
