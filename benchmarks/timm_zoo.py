"""Import the model zoos people actually have (issue #29): a list of timm CNNs (one or two per family)
and every torchvision classification, segmentation and video model, each through cnncalc's Python
import with the proof against torch (`import_model(..., prove=True)`, what `cnncalc.spec_from_torch`
and `cnncalc import` run: every layer's shape, the params, buffers and FLOPs against torch's
FlopCounterMode, the state_dict loaded strictly into the exported module and the outputs of one
forward pass compared). Per model it prints one outcome:

    exact      the spec was written and proved (a note says when the outputs were not compared)
    refused    a CnnError a user would see (grouped by cause: the listed operations, or the first line)
    wrong      a written spec that does not reproduce the model ("this is a bug in cnncalc")
    traceback  any other exception (a bug: users must never see one), with its type
    timeout / killed / no model   the child ran out of time or memory, or the zoo could not build it

then a summary: counts per outcome, the % of timm CNN models imported exactly, and the refusal causes
ranked by how many models they block. Each model runs in its own subprocess (timeout and an address-
space cap), so one bad model cannot stop the run, and each result is appended to a JSONL file as it
comes, so a partial run still reports (`--summary` re-reads it; a rerun skips models already there
unless `--again`). Only weights=None / pretrained=False: nothing is downloaded.

How to run it. timm needs torchvision, and the registry's torchvision matches the registry's default
torch build (CUDA), not the CPU wheel of the project's venv; so run it in a venv of its own, with
the cnncalc of this checkout first on the path:

    python3 -m venv /tmp/zoovenv
    /tmp/zoovenv/bin/pip install torch "torchvision==0.29.*" timm pyyaml rich   # the cnncalc deps too
    cd /path/to/cnncalc   # this checkout
    PYTHONPATH=$PWD nice -n 10 /tmp/zoovenv/bin/python benchmarks/timm_zoo.py --out /tmp/timmzoo/zoo.jsonl
    PYTHONPATH=$PWD /tmp/zoovenv/bin/python -c "import cnncalc; print(cnncalc.__file__)"   # must be this checkout

(`pip install -e .` of this checkout into that venv works as well.) Useful flags: `--only a,b`
(names or fnmatch patterns), `--skip-torchvision`, `--skip-timm`, `--no-video`, `--jobs N` (models in
parallel; default 1), `--timeout S` (per model, default 240), `--mem-gb G` (address-space cap per
model, default 10; regnet_y_128gf gets at least 18: MEM_GB_AT_LEAST), `--default-size` (timm's
pretrained_cfg input_size instead of 224),
`--specs DIR` (keep each written spec), `--list` (the models and inputs, nothing run).
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# ---- the models --------------------------------------------------------------------------------
#: (timm name, family) — one or two per family named in issue #29, small variants (the family's
#: layers are the same at every width). cnn=False: not a CNN (kept out of the % of CNNs).
TIMM: list[tuple[str, str]] = [
    ("resnet18", "ResNet"), ("resnet50", "ResNet"),
    ("resnet26d", "ResNet-D"), ("resnet50d", "ResNet-D"),
    ("seresnext26d_32x4d", "SE-ResNeXt"), ("ecaresnet26t", "ECA-ResNet"),
    ("resnest14d", "ResNeSt"),
    ("res2net50_26w_4s", "Res2Net"),
    ("skresnet18", "SK-ResNet"),
    ("regnetx_002", "RegNetX"), ("regnety_002", "RegNetY"), ("regnetz_005", "RegNetZ"),
    ("efficientnet_b0", "EfficientNet"), ("tf_efficientnet_b0", "EfficientNet"),
    ("efficientnetv2_rw_t", "EfficientNetV2"), ("tf_efficientnetv2_b0", "EfficientNetV2"),
    ("mobilenetv2_100", "MobileNetV2"),
    ("mobilenetv3_large_100", "MobileNetV3"), ("tf_mobilenetv3_small_100", "MobileNetV3"),
    ("mobilenetv4_conv_small", "MobileNetV4"),
    ("ghostnet_100", "GhostNet"), ("ghostnetv2_100", "GhostNetV2"),
    ("rexnet_100", "ReXNet"),
    ("mnasnet_100", "MNASNet"),
    ("fbnetc_100", "FBNet"), ("fbnetv3_b", "FBNet"),
    ("mixnet_s", "MixNet"),
    ("tinynet_e", "TinyNet"),
    ("lcnet_050", "LCNet"),
    ("hardcorenas_a", "HardCoReNAS"),
    ("cspresnet50", "CSPResNet"), ("cspdarknet53", "CSPDarkNet"), ("darknet17", "DarkNet"),
    ("dla34", "DLA"),
    ("dpn68b", "DPN"),
    ("hrnet_w18_small", "HRNet"),
    ("ese_vovnet19b_dw", "VoVNet"),
    ("repvgg_a0", "RepVGG"),
    ("mobileone_s0", "MobileOne"),
    ("convnext_atto", "ConvNeXt"), ("convnextv2_atto", "ConvNeXtV2"),
    ("nf_resnet26", "NF-ResNet"), ("dm_nfnet_f0", "NFNet"),
    ("densenet121", "DenseNet"),
    ("inception_v3", "Inception"), ("inception_v4", "Inception"),
    ("xception41", "Xception"), ("legacy_xception", "Xception"),
    ("selecsls42b", "SelecSLS"),
    ("tresnet_m", "TResNet"),
    ("gernet_s", "GERNet"),
    ("hgnet_tiny", "HGNet"), ("hgnetv2_b0", "HGNet"),
    ("rdnet_tiny", "RDNet"),
    ("inception_next_atto", "InceptionNeXt"),
    ("repghostnet_050", "RepGhost"),
    ("edgenext_xx_small", "EdgeNeXt"),
    ("fastvit_t8", "FastViT"),
    ("efficientformer_l1", "EfficientFormer"), ("efficientformerv2_s0", "EfficientFormer"),
    ("levit_128s", "LeViT"),
    ("mobilevit_xxs", "MobileViT"), ("mobilevitv2_050", "MobileViT"),
    ("coatnet_nano_rw_224", "CoAtNet"),
    ("botnet26t_256", "BoTNet"), ("halonet26t", "HaloNet"), ("lambda_resnet26t", "LambdaNet"),
]
#: timm models whose default input (pretrained_cfg input_size) is demanded, not only their fixed-size
#: ones: HaloNet's attention asserts feature maps divisible by its block (8), which 224 is not
NEEDS_DEFAULT = {"halonet26t"}
#: models that need more address space than --mem-gb's default: regnet_y_128gf (645 M params) holds the
#: model, the spec's module and the exported module at once (3 × 2.6 GB) besides torch itself
MEM_GB_AT_LEAST = {"regnet_y_128gf": 18.0}
NOT_CNN = {"vit_tiny_patch16_224": "ViT"}  #: transformers users point import at: run, not counted as CNNs
#: torchvision video models and their input (C, T, H, W): s3d and MViT fix their spatial size
VIDEO_SHAPES = {"s3d": (3, 16, 224, 224), "mvit_v1_b": (3, 16, 224, 224), "mvit_v2_s": (3, 16, 224, 224)}
VIDEO_DEFAULT = (3, 16, 112, 112)
#: what another change is fixing right now (issue #29 items 1-3, 5), told apart in the summary
BEING_FIXED = [
    ("ScaledStdConv2d", re.compile(r"ScaledStdConv|StdConv", re.I)),
    ("uneven TF-same padding", re.compile(r"Conv2dSame|same.?pad|pad_same|get_same_padding|MaxPool2dSame|"
                                          r"AvgPool2dSame", re.I)),
    ("layer_scale/gamma tensor attribute", re.compile(r"\bgamma\b|layer_scale|LayerScale", re.I)),
]


def timm_models() -> list[dict]:
    rows = [{"zoo": "timm", "name": n, "family": f, "cnn": True} for n, f in TIMM]
    return rows + [{"zoo": "timm", "name": n, "family": f, "cnn": False} for n, f in NOT_CNN.items()]


def torchvision_models(video: bool) -> list[dict]:
    from torchvision import models

    rows = []
    kinds = [("classification", models), ("segmentation", models.segmentation)]
    if video:
        kinds.append(("video", models.video))
    for kind, module in kinds:
        for name in models.list_models(module=module):
            shape = (VIDEO_SHAPES.get(name, VIDEO_DEFAULT) if kind == "video" else
                     (3, 299, 299) if name == "inception_v3" else (3, 224, 224))
            rows.append({"zoo": "torchvision", "name": name, "family": kind, "cnn": not _transformer(name),
                         "shape": list(shape)})
    return rows


def _transformer(name: str) -> bool:
    return name.startswith(("vit_", "swin", "maxvit", "mvit"))


# ---- one model, in a child process ---------------------------------------------------------------
def build(row: dict, default_size: bool):
    """(the model, its input without batch) — untrained weights, nothing downloaded."""
    if row["zoo"] == "timm":
        import timm

        model = timm.create_model(row["name"], pretrained=False)
        cfg = getattr(model, "pretrained_cfg", {}) or {}
        size = tuple(cfg.get("input_size", (3, 224, 224)))
        fixed = cfg.get("fixed_input_size", False) or row["name"] in NEEDS_DEFAULT
        return model, (size if default_size or fixed else (size[0], 224, 224))
    from torchvision import models

    extra = {"weights_backbone": None} if row["family"] == "segmentation" else {}
    if row["name"] in ("googlenet", "inception_v3"):
        extra["init_weights"] = True  # no warning; the aux heads stay, as in the default model
    return models.get_model(row["name"], weights=None, **extra), tuple(row["shape"])


def origin(exc: BaseException) -> str:
    """Where in the zoo's code the exception cnncalc turned into its message was raised (fx's
    trace errors say nothing of where): 'timm/layers/padding.py:pad_same:42', or ''."""
    ctx = exc.__context__
    if ctx is None or ctx.__traceback__ is None:
        return ""
    frames = [f for f in traceback.extract_tb(ctx.__traceback__) if re.search(r"[/\\](timm|torchvision)[/\\]", f.filename)]
    if not frames:
        return ""
    f = frames[-1]
    path = re.split(r"(?=(?:timm|torchvision)[/\\])", f.filename, maxsplit=1)[-1]
    return f"{path}:{f.name}:{f.lineno}"


def child(row: dict, out: str, default_size: bool, specs: str | None, threads: int) -> None:
    """Run one import and write its outcome to `out` (JSON)."""
    result: dict = {"outcome": "traceback", "stage": "start"}

    def save() -> None:
        result["maxrss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        with open(out, "w") as f:
            json.dump(result, f)

    try:
        import torch

        torch.set_num_threads(threads)
        import cnncalc
        from cnncalc.errors import CnnError
        from cnncalc.interop.torch_import import import_model, snake_name

        result["cnncalc"] = cnncalc.__file__
        result["stage"] = "build"
        start = time.perf_counter()
        try:
            model, shape = build(row, default_size)
        except Exception as exc:  # noqa: BLE001 - the zoo's problem, not cnncalc's
            result.update(outcome="no model", message=f"{type(exc).__name__}: {exc}"[:500])
            save()
            return
        model.eval()
        result["build_s"] = round(time.perf_counter() - start, 2)
        result["shape"] = list(shape)
        result["torch_params"] = sum(p.numel() for p in model.parameters())
        result["class"] = f"{type(model).__module__}.{type(model).__qualname__}"
        result["stage"] = "import"
        start = time.perf_counter()
        try:
            what = type(model).__name__
            header = [f"written by benchmarks/timm_zoo.py from {row['zoo']} {row['name']} at "
                      f"{'x'.join(map(str, shape))}"]
            text, notes = import_model(model, shape, snake_name(row["name"]), header, what, True)
        except CnnError as exc:
            result["import_s"] = round(time.perf_counter() - start, 2)
            message = "\n".join(p.message for p in exc.problems)
            result["message"] = message
            result["outcome"] = "wrong" if "bug in cnncalc" in message else "refused"
            result["origin"] = origin(exc)
            save()
            return
        result["import_s"] = round(time.perf_counter() - start, 2)
        result["stage"] = "analyse"
        report = cnncalc.analyze(cnncalc.parse_spec(text))
        result.update(outcome="exact", notes=notes, params=report.totals["params"],
                      flops=report.totals["flops"], spec_lines=len(text.splitlines()),
                      compared=not any(n.startswith("outputs not compared") for n in notes))
        if specs:
            os.makedirs(specs, exist_ok=True)
            with open(os.path.join(specs, f"{row['zoo']}_{row['name']}.yaml"), "w") as f:
                f.write(text)
    except BaseException as exc:  # noqa: BLE001 - the point: a traceback is an outcome
        result.update(outcome="traceback", type=f"{type(exc).__module__}.{type(exc).__name__}",
                      message=str(exc)[:2000], traceback=traceback.format_exc()[-4000:])
    save()


# ---- the parent: one subprocess per model ----------------------------------------------------------
def _limit(gb: float):
    def apply() -> None:
        if gb > 0:
            cap = int(gb * 2**30)
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    return apply


def run_one(row: dict, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="timmzoo_") as tmp:
        out = os.path.join(tmp, "result.json")
        cmd = [sys.executable, os.path.abspath(__file__), "--child", json.dumps(row), "--child-out", out,
               "--threads", str(args.threads)] + (["--default-size"] if args.default_size else []) + (
            ["--specs", args.specs] if args.specs else [])
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=_limit(max(args.mem_gb, MEM_GB_AT_LEAST.get(row["name"], 0))
                                                  if args.mem_gb > 0 else 0),
                                env={**os.environ, "PYTHONWARNINGS": "ignore"})
        try:
            log, _ = proc.communicate(timeout=args.timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            log, _ = proc.communicate()
            timed_out = True
        took = round(time.perf_counter() - start, 2)
        result = {}
        if os.path.exists(out):
            with open(out) as f:
                result = json.load(f)
        if timed_out:
            result = {**result, "outcome": "timeout", "message": f"over {args.timeout} s (at stage "
                      f"{result.get('stage', 'start')})"}
        elif not result or proc.returncode != 0 and result.get("outcome") == "traceback" and "type" not in result:
            tail = (log or b"").decode(errors="replace")[-1500:]
            oom = "MemoryError" in tail or proc.returncode in (-9, 137) or "std::bad_alloc" in tail
            result = {**result, "outcome": "killed" if oom else "traceback", "type": f"exit {proc.returncode}",
                      "message": tail.strip().splitlines()[-1] if tail.strip() else f"exit {proc.returncode}",
                      "log_tail": tail}
    return {**row, **result, "time_s": took, "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


# ---- reading the outcomes ----------------------------------------------------------------------------
LISTED = "import: the model cannot be written as a spec"
COUNTED = re.compile(r"^(\d+) × .*?; e\.g\. ")


def causes(message: str, where: str = "") -> list[str]:
    """The causes of a refusal, each as a key shared across models: the listed operations (paths
    made generic, the module class kept) or the first line with numbers and names made generic
    (and `where`, the zoo's function that raised it, without the line number)."""
    lines = message.splitlines()
    if lines and lines[0].startswith(LISTED):
        keys, attrs = set(), defaultdict(set)  # tensor attributes: one cause per module class
        for line in lines[1:]:
            line = line.strip()
            if not line or line.startswith(("A model import cannot read", "… and")):
                continue
            line = COUNTED.sub("", line).split(" — ")[0]
            cause, _, where = line.rpartition(" at ")
            found = re.search(r"\(([A-Za-z0-9_]+), ", where)
            cls = found.group(1) if found else ""
            attr = re.fullmatch(r"the tensor attribute self\.(?:[A-Za-z0-9_.]*\.)?([A-Za-z0-9_]+) used directly in forward",
                                cause)
            if attr:  # fx's names for constant tensors made in forward: _tensor_constant0, 1, …
                attrs[cls].add(re.sub(r"^(_tensor_constant)\d+$", r"\1N", attr.group(1)))
                continue
            cause = re.sub(r"\b(aten\.|_?[a-z_]+_)\d+\b", r"\1N", cause or line)
            if re.search(r" \(module [^)]*\)", cause):  # a module class named as the cause: its path and parent go
                keys.add(re.sub(r" \(module [^)]*\)", "", cause))
                continue
            keys.add(cause + (f" [in {cls}]" if cls else ""))
        for cls, names in attrs.items():
            keys.add(f"tensor attributes used directly in forward ({', '.join(sorted(names))})" + (f" [in {cls}]" if cls
                                                                                                  else ""))
        return sorted(keys) or [lines[0]]
    first = lines[0] if lines else "(no message)"
    first = re.sub(r"\d+(×\d+)+", "SIZE", first)
    first = re.sub(r"(?<=[.\s(])\d+(?=[.\s)])", "N", first)
    first = re.sub(r"^import: torch\.fx cannot trace \w+: (.*) \(import needs a forward pass without Python control "
                   r"flow on tensor values\)$", r"torch.fx cannot trace: \1", first)
    return [first[:220] + (f" [at {where.rsplit(':', 1)[0]}]" if where else "")]


def fixing(key: str) -> str:
    return next((label for label, pattern in BEING_FIXED if pattern.search(key)), "")


def line_for(r: dict) -> str:
    base = f"{r['zoo']:11s} {r['name']:28s} {r.get('family', ''):16s} {r['outcome']:9s} {r.get('time_s', 0):7.1f} s"
    if r["outcome"] == "exact":
        extra = f"params {r.get('params', 0):,}  flops {r.get('flops', 0):,}"
        if not r.get("compared", True):
            extra += "  (outputs not compared)"
        if any("left out" in n or "without the" in n for n in r.get("notes", [])):
            extra += "  (" + "; ".join(n for n in r["notes"] if "left out" in n or "without the" in n)[:150] + ")"
        return f"{base}  {extra}"
    if r["outcome"] == "refused":
        return f"{base}  " + " | ".join(causes(r.get("message", ""), r.get("origin", "")))[:400]
    if r["outcome"] == "traceback":
        return f"{base}  {r.get('type', '?')}: {(r.get('message') or '').splitlines()[0][:300] if r.get('message') else ''}"
    return f"{base}  {(r.get('message') or '')[:400]}"


def summary(rows: list[dict]) -> str:
    out = []
    latest = {(r["zoo"], r["name"]): r for r in rows}
    rows = list(latest.values())
    outcomes = ["exact", "refused", "wrong", "traceback", "timeout", "killed", "no model"]
    out.append("\n== outcomes ==")
    out.append(f"{'':28s} " + " ".join(f"{o:>9s}" for o in outcomes) + "    all")
    groups = [("timm CNN", lambda r: r["zoo"] == "timm" and r.get("cnn")),
              ("timm other", lambda r: r["zoo"] == "timm" and not r.get("cnn")),
              ("torchvision classification", lambda r: r["zoo"] == "torchvision" and r["family"] == "classification"),
              ("torchvision segmentation", lambda r: r["zoo"] == "torchvision" and r["family"] == "segmentation"),
              ("torchvision video", lambda r: r["zoo"] == "torchvision" and r["family"] == "video"),
              ("all", lambda r: True)]
    for label, pick in groups:
        chosen = [r for r in rows if pick(r)]
        if not chosen:
            continue
        c = Counter(r["outcome"] for r in chosen)
        out.append(f"{label:28s} " + " ".join(f"{c.get(o, 0):9d}" for o in outcomes) + f"  {len(chosen):5d}")
    cnn = [r for r in rows if r["zoo"] == "timm" and r.get("cnn")]
    if cnn:
        exact = sum(r["outcome"] == "exact" for r in cnn)
        out.append(f"\ntimm CNN models imported exactly: {exact}/{len(cnn)} = {100 * exact / len(cnn):.0f}%")
    tvc = [r for r in rows if r["zoo"] == "torchvision" and r.get("cnn") and r["family"] in ("classification",
                                                                                               "segmentation")]
    if tvc:
        exact = sum(r["outcome"] == "exact" for r in tvc)
        out.append(f"torchvision CNN classifiers + segmentation imported exactly: {exact}/{len(tvc)} = "
                   f"{100 * exact / len(tvc):.0f}%")
    families: dict[str, Counter] = defaultdict(Counter)
    for r in rows:
        if r["zoo"] == "timm":
            families[r["family"]][r["outcome"]] += 1
    if families:
        out.append("\n== timm per family ==")
        for fam, c in families.items():
            out.append(f"  {fam:16s} " + ", ".join(f"{n} {o}" for o, n in c.most_common()))
    blocked: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        if r["outcome"] == "refused":
            for key in causes(r.get("message", ""), r.get("origin", "")):
                blocked[key].append(r["name"])
    if blocked:
        out.append("\n== refusal causes, by how many models they block ==")
        for key, names in sorted(blocked.items(), key=lambda kv: (-len(kv[1]), kv[0])):
            tag = fixing(key)
            out.append(f"{len(names):4d}  {key}" + (f"   [being fixed: {tag}]" if tag else ""))
            out.append(f"        {', '.join(names)}")
        only = [r["name"] for r in rows if r["outcome"] == "refused"
                and all(fixing(k) for k in causes(r.get("message", ""), r.get("origin", "")))]
        if only:
            out.append(f"\nrefused only for causes being fixed ({len(only)}): {', '.join(only)}")
    bad = [r for r in rows if r["outcome"] in ("wrong", "traceback", "timeout", "killed", "no model")]
    if bad:
        out.append("\n== wrong, tracebacks, timeouts ==")
        for r in bad:
            out.append(f"  {r['zoo']} {r['name']}: {r['outcome']} {r.get('type', '')}: {(r.get('message') or '')[:600]}")
    times = sorted(r.get("time_s", 0) for r in rows)
    if times:
        out.append(f"\n{len(rows)} models, {sum(times) / 60:.1f} min in all, median {times[len(times) // 2]:.1f} s, "
                   f"max {times[-1]:.1f} s per model (subprocess wall time: torch import, build, trace, proof)")
    return "\n".join(out)


def read(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="/tmp/timmzoo/zoo.jsonl", help="JSONL file the results are appended to")
    p.add_argument("--only", default="", help="comma-separated names or fnmatch patterns")
    p.add_argument("--skip-torchvision", action="store_true")
    p.add_argument("--skip-timm", action="store_true")
    p.add_argument("--no-video", action="store_true", help="leave out torchvision's video models")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--threads", type=int, default=1, help="torch threads in each child")
    p.add_argument("--timeout", type=float, default=240)
    p.add_argument("--mem-gb", type=float, default=10, help="address-space cap per child (0: none)")
    p.add_argument("--default-size", action="store_true", help="timm's pretrained_cfg input_size, not 224")
    p.add_argument("--specs", default=None, help="folder to keep each written spec in")
    p.add_argument("--again", action="store_true", help="rerun models already in --out")
    p.add_argument("--summary", action="store_true", help="only print the summary of --out")
    p.add_argument("--list", action="store_true", help="list the models, run nothing")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--child-out", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(json.loads(args.child), args.child_out, args.default_size, args.specs, args.threads)
        return
    if args.summary:
        rows = read(args.out)
        for r in rows:
            print(line_for(r))
        print(summary(rows))
        return
    rows = ([] if args.skip_timm else timm_models()) + ([] if args.skip_torchvision else
                                                         torchvision_models(not args.no_video))
    if args.only:
        pats = [s.strip() for s in args.only.split(",") if s.strip()]
        rows = [r for r in rows if any(fnmatch.fnmatch(r["name"], s) for s in pats)]
    if args.list:
        for r in rows:
            print(f"{r['zoo']:11s} {r['name']:28s} {r['family']:16s} {'x'.join(map(str, r.get('shape', ['cfg'])))}")
        print(f"{len(rows)} models")
        return
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    done = set() if args.again else {(r["zoo"], r["name"]) for r in read(args.out)}
    todo = [r for r in rows if (r["zoo"], r["name"]) not in done]
    print(f"{len(rows)} models, {len(rows) - len(todo)} already in {args.out}; running {len(todo)} "
          f"(jobs {args.jobs}, timeout {args.timeout:g} s, cap {args.mem_gb:g} GiB)", flush=True)
    lock = threading.Lock()

    def one(row: dict) -> None:
        result = run_one(row, args)
        with lock:
            with open(args.out, "a") as f:
                f.write(json.dumps(result) + "\n")
            print(line_for(result), flush=True)

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        list(pool.map(one, todo))
    wanted = {(r["zoo"], r["name"]) for r in rows}
    print(summary([r for r in read(args.out) if (r["zoo"], r["name"]) in wanted]), flush=True)


if __name__ == "__main__":
    # this checkout's cnncalc first (not one installed in the venv); benchmarks/profile.py would shadow the stdlib's
    sys.path[:] = [ROOT] + [p for p in sys.path if os.path.abspath(p or ".") not in (HERE, ROOT)]
    main()
