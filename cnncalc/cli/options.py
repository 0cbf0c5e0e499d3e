"""Options shared by several commands and how their text is parsed (--input, --set, budgets, units)."""
from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Any, overload

import typer

from cnncalc.units import DTYPE_BYTES

if TYPE_CHECKING:
    from cnncalc.analysis.report import Report


class Format(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"
    markdown = "markdown"
    html = "html"
    dot = "dot"
    mermaid = "mermaid"


class By(str, Enum):
    type = "type"


class Output(str, Enum):
    """The formats of the commands that print one table (diff, rf, sweep, verify)."""
    table = "table"
    json = "json"


class CheckFormat(str, Enum):
    text = "text"
    json = "json"
    github = "github"


Dtype = Enum("Dtype", {name: name for name in DTYPE_BYTES}, type=str)  # type: ignore[misc]


class AmpDtype(str, Enum):
    bf16 = "bf16"
    fp16 = "fp16"


class AmpDevice(str, Enum):
    cuda = "cuda"
    cpu = "cpu"


AmpOpt = typer.Option(None, "--amp", help="Mixed precision as torch.autocast runs it: the ops in its low-precision "
                                          "list in bf16 or fp16, float32 master weights, gradients and state.")
AmpDeviceOpt = typer.Option(AmpDevice.cuda, "--amp-device",
                            help="Whose autocast op lists apply (CUDA and CPU differ); verify uses its own device's.")


CheckpointOpt = typer.Option(None, "--checkpoint",
                             help="Checkpoint these block uses (USE,USE… or all: every top-level one) as "
                                  "torch.utils.checkpoint does: their layers save nothing, backward recomputes them.")


def parse_checkpoint(text: str | None) -> list[str] | str | None:
    """--checkpoint all | USE[,USE…]."""
    if text is None:
        return None
    if text.strip() == "all":
        return "all"
    uses = [u.strip() for u in text.split(",") if u.strip()]
    if not uses:
        raise typer.BadParameter("expected block uses like layer1,layer2 or all", param_hint="--checkpoint")
    return uses


def with_amp(report: Report, amp: AmpDtype | None, device: AmpDevice | str = "cuda",
             checkpoint: list[str] | str | None = None) -> Report:
    """The report's memory figures as autocast runs them (--amp) and with block uses checkpointed
    (--checkpoint), or the report as it is."""
    if amp is None and checkpoint is None:
        return report
    from cnncalc.analysis.checkpoint import apply_checkpoint
    from cnncalc.analysis.precision import Amp, apply_amp

    try:
        precision = Amp(amp.value, device.value if isinstance(device, AmpDevice) else device) if amp else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--amp") from None
    try:
        if checkpoint is not None:
            return apply_checkpoint(report, checkpoint, precision)
        assert precision is not None
        return apply_amp(report, precision)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--checkpoint" if checkpoint else "--amp") from None


class Optimizer(str, Enum):
    sgd = "sgd"
    momentum = "momentum"
    adam = "adam"


@overload
def parse_input(value: str) -> tuple[int, ...]: ...
@overload
def parse_input(value: None) -> None: ...
@overload
def parse_input(value: str | None) -> tuple[int, ...] | None: ...


def parse_input(value: str | None) -> tuple[int, ...] | None:
    """--input CxHxW (without the batch) as a shape; None when not given."""
    if value is None:
        return None
    from cnncalc.spec.schema import parse_shape

    try:
        return parse_shape(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--input") from None


def _analyze(spec: str, batch: int | None, input: str | None, dtype: Dtype | None, optimizer: Optimizer,
             sets: list[str] | None = None) -> Report:
    """The spec read (with its --set overrides) and analysed at the command line's batch, input and dtype."""
    from cnncalc.analysis.analyze import analyze
    from cnncalc.spec.expand import load_spec

    return analyze(load_spec(spec, parse_sets(sets)), batch, parse_input(input), dtype.value if dtype else None,
                   optimizer.value)


def parse_sets(sets: list[str] | None) -> dict[str, Any]:
    """--set NAME=VALUE (repeatable): VALUE read as a YAML scalar (0.75, 1000, true, text)."""
    import yaml

    out: dict[str, Any] = {}
    for item in sets or []:
        name, eq, text = item.partition("=")
        if not eq or not name.strip():
            raise typer.BadParameter(f"expected NAME=VALUE, received {item[:60]!r}", param_hint="--set")
        try:
            value = yaml.safe_load(text) if len(text) <= 200 else None
        except yaml.YAMLError:
            value = None
        if not isinstance(value, (int, float, str, bool)):
            raise typer.BadParameter(f"expected a number, true/false or a word after '=', received {text[:60]!r}",
                                     param_hint="--set")
        out[name.strip()] = value
    return out


SetOpt = typer.Option(None, "--set", help="Override a spec argument (its `args:`), e.g. --set width=0.75; repeatable.")


def _qty(value: str, flag: str, in_bytes: bool) -> int:
    from cnncalc.units import parse_quantity

    try:
        return parse_quantity(value, in_bytes)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=flag) from None


def budget_flags(max_params: str | None, max_macs: str | None, max_flops: str | None, max_memory: str | None,
                 max_training_memory: str | None, max_activations: str | None) -> dict[str, int]:
    """The budgets given on the command line, each read as a count or a byte size (a usage error names its flag)."""
    given = {"max_params": (max_params, "--max-params"), "max_macs": (max_macs, "--max-macs"),
             "max_flops": (max_flops, "--max-flops"), "max_inference_memory": (max_memory, "--max-memory"),
             "max_training_memory": (max_training_memory, "--max-training-memory"),
             "max_activation_bytes": (max_activations, "--max-activations")}
    from cnncalc.spec.schema import BYTE_LIMITS

    return {k: _qty(v, flag, k in BYTE_LIMITS) for k, (v, flag) in given.items() if v is not None}


MaxParams = typer.Option(None, "--max-params", help="Budget, e.g. 25M.", rich_help_panel="Budgets")
MaxMacs = typer.Option(None, "--max-macs", help="Budget, e.g. 4.1G.", rich_help_panel="Budgets")
MaxFlops = typer.Option(None, "--max-flops", help="Budget, e.g. 8.2G.", rich_help_panel="Budgets")
MaxMemory = typer.Option(None, "--max-memory", help="Inference memory budget, e.g. 512MiB.", rich_help_panel="Budgets")
MaxTraining = typer.Option(None, "--max-training-memory", help="Training-step memory budget, e.g. 8GiB.",
                           rich_help_panel="Budgets")
MaxActivations = typer.Option(None, "--max-activations", help="Budget for all activations, e.g. 1GiB.",
                              rich_help_panel="Budgets")

SpecArg = typer.Argument(..., help="YAML spec file.", show_default=False)
BatchOpt = typer.Option(None, "--batch", "-b", min=1, max=2**40, help="Batch size (default: the spec's, else 1).")
InputOpt = typer.Option(None, "--input", "-i", help="Input without batch, e.g. 3x224x224 (overrides the spec).")
DtypeOpt = typer.Option(None, "--dtype", help="Element type for byte counts (counts do not change).")


class Target(str, Enum):
    torch = "torch"
    onnx = "onnx"


def parse_unit(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in text.split(","))
    except ValueError:
        raise ValueError(f"expected indices like 3,4, received {text!r}") from None
