"""QAT vs PTQ for the ONNX Runtime INT8 target on the demo's MobileNet v2 (issue 5, acceptance 5).

The model is the demo's (``make demo``: MobileNet v2 width 0.5, CIFAR stem, trained on CIFAR-10
(JPEG copy)). Every accuracy is top-1 of an ONNX Runtime model (2 threads) on the full CIFAR-10
(JPEG copy) test split, 10,000 images:

* FP32: the checkpoint exported to ONNX;
* PTQ: ``quantize_static_onnx`` exactly as the build's quantize stage calls it (minmax ranges on
  the 512 train images ``calibration_indices(50000, 512, 0)`` picks, per-channel weights,
  ``reduce_range`` = this CPU's choice), plus harsher weight settings (per-tensor, 7-bit), since
  with per-channel weights on a VNNI CPU the PTQ drop may be too small to measure a recovery;
* QAT: ``edgecnn.quantize.qat.qat_finetune`` for ``--epochs`` epochs over the 50,000 train
  images (flip augmentation, as the demo trained), then exported and quantized by the same
  ``quantize_static_onnx`` call with the same calibration images and settings;
* for ``--compare-settings``: the same fine-tune (same loop, optimizer, schedule and data) with
  NNCF's QAT and torchao's PT2E QAT (X86InductorQuantizer) instead, their trained FP32 weights
  re-quantized by ONNX Runtime the same way (the target layout), and two controls without fake
  quantization (plain FP32 fine-tuning, and the QAT graph with its quantizers off: BatchNorm
  folded and frozen), which show what the extra training alone does.

"Recovered" = (QAT top-1 - PTQ top-1) / (FP32 top-1 - PTQ top-1). Times per epoch are wall-clock
seconds on this machine (2 threads); hold the shared CPU lock:

    flock /tmp/edgecnn-cpu.lock .venv/bin/python benchmarks/qat_mobilenet_v2.py \\
        --weights runs/mobilenet_int8/train/best.safetensors

(about 25 minutes on the 2-core EPYC). ``--train-limit 512 --test-limit 500 --epochs 1`` makes
a quick smoke run; ``--merge`` adds a partial rerun's entries to an existing result file (an
entry measured again keeps the earlier one under ``replicates``). Writes
benchmarks/results/qat_mobilenet_v2.json after every step, so an interrupted run keeps what it
measured.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgecnn.atomic import atomic_write_json
from edgecnn.backends.onnxruntime_backend import OnnxRuntimeRunner
from edgecnn.data import calibration_indices, load_split
from edgecnn.data.loaders import BatchLoader
from edgecnn.export.onnx_export import export_onnx
from edgecnn.models import create_model
from edgecnn.models.onednn_workarounds import explicit_padding_on_tiny_depthwise
from edgecnn.quantize.cpu_features import choose_reduce_range
from edgecnn.quantize.onnxruntime_static import quantize_static_onnx
from edgecnn.quantize.qat import QATModel, qat_finetune, train_epochs
from edgecnn.targets.context import run_context
from edgecnn.train.evaluate import agreement, evaluate

RESULTS = Path(__file__).parent / "results"
SETTINGS = {  # name -> (per_channel, reduce_range)
    "per-channel-8bit": (True, False),
    "per-channel-7bit": (True, True),
    "per-tensor-8bit": (False, False),
    "per-tensor-7bit": (False, True),
}
METHODS = ("qat", "fp32-finetune", "folded-fp32-finetune", "nncf", "pt2e")
LABEL_SMOOTHING = 0.1  # the demo recipe's training loss, kept for the fine-tune


def demo_model(weights: Path) -> torch.nn.Module:
    from safetensors.torch import load_file

    model = create_model("mobilenet_v2", num_classes=10, cifar_stem=True, width_mult=0.5,
                         dropout=0.0)
    model.load_state_dict(load_file(str(weights)))
    return model.eval()


def build_calibration(train, mean, std, samples: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """The build's calibration batch (recipe/stages.py run_quantize), seed 0."""
    picks = calibration_indices(len(train), samples, 0)
    calib = np.concatenate([x.numpy() for x, _ in BatchLoader(
        train.subset(picks, "calibration"), 256, mean, std)])
    return picks, calib


class Evaluator:
    def __init__(self, test, mean, std, work: Path, calib: np.ndarray) -> None:
        self.test, self.mean, self.std, self.work, self.calib = test, mean, std, work, calib
        self.fp32_predictions: np.ndarray | None = None

    def onnx(self, path: Path) -> tuple[dict[str, Any], np.ndarray]:
        result = evaluate(OnnxRuntimeRunner(path, threads=2), self.test, self.mean, self.std)
        out = {"top1": result.top1, "top5": result.top5}
        if self.fp32_predictions is not None:
            out["agreement_with_fp32"] = agreement(result.predictions, self.fp32_predictions)
        return out, result.predictions

    def export(self, model: torch.nn.Module, tag: str) -> Path:
        path = self.work / f"{tag}.fp32.onnx"
        export_onnx(model.eval().cpu(), path, 32)
        return path

    def int8(self, fp32: Path, tag: str, setting: str, method: str = "minmax",
             calib: np.ndarray | None = None) -> dict[str, Any]:
        per_channel, reduce_range = SETTINGS[setting]
        path = self.work / f"{tag}.{setting}.{method}.int8.onnx"
        info = quantize_static_onnx(fp32, path, self.calib if calib is None else calib,
                                    method=method, per_channel=per_channel,
                                    reduce_range=reduce_range)
        result, _ = self.onnx(path)
        return {**result, "quantizer": info.quantizer}


def _weights_back(trained_state: dict[str, torch.Tensor], like: torch.nn.Module,
                  source: str) -> torch.nn.Module:
    """A fresh copy of ``like`` holding the FP32 weights a library trained (same keys)."""
    model = copy.deepcopy(like)
    wanted = model.state_dict()
    missing = [k for k in wanted if k not in trained_state]
    if missing:
        raise RuntimeError(f"{source}: trained model lacks {missing[:3]}")
    model.load_state_dict({k: trained_state[k].detach().cpu() for k in wanted})
    return model.eval()


def run_method(method: str, model, train, calib, mean, std, setting: str, args) -> tuple:
    """Fine-tune with ``method``; returns (FP32 model to quantize, per-epoch seconds, notes)."""
    per_channel, reduce_range = SETTINGS[setting]
    epochs, lr, batch = args.epochs, args.lr, args.batch_size
    if method == "qat":
        trained, result = qat_finetune(model, train, calibration=calib, mean=mean, std=std,
                                       epochs=epochs, lr=lr, batch_size=batch,
                                       per_channel=per_channel, reduce_range=reduce_range,
                                       augment="flip", label_smoothing=LABEL_SMOOTHING)
        return trained, result.epoch_seconds, {
            "activation_quantizers": result.activation_quantizers,
            "weight_quantizers": result.weight_quantizers,
            "recalibrations": result.recalibrations, "scheme": result.scheme,
            "train_top1_fake_quant": result.train_top1}
    loader = BatchLoader(train, batch, mean, std, shuffle=True, augment="flip", seed=0,
                         drop_last=True, channels_last=True)
    common = dict(epochs=epochs, lr=lr, label_smoothing=LABEL_SMOOTHING)
    torch.manual_seed(0)
    if method == "folded-fp32-finetune":
        # The QAT model with every quantizer off: BatchNorm folded and frozen, the same graph
        # and training, no fake quantization. Separates what quantization awareness adds from
        # what the extra training (with frozen statistics) adds.
        qat = QATModel(model, per_channel=per_channel, reduce_range=reduce_range)
        for fq in (*qat.weight_quantizers, *qat.activation_quantizers):
            fq.enabled = False
        qat.graph_module.to(memory_format=torch.channels_last)
        with explicit_padding_on_tiny_depthwise(qat.model, (1, 3, 32, 32)):
            stats = train_epochs(qat, [p for p in qat.graph_module.parameters()
                                       if p.requires_grad], loader, set_train=qat.train,
                                 **common)
        return (qat.float_model().to(memory_format=torch.contiguous_format),
                [s.seconds for s in stats],
                {"scheme": "QAT graph with the quantizers off (control): BatchNorm folded and "
                           "frozen, no fake quantization"})
    if method == "fp32-finetune":
        net = copy.deepcopy(model).to(memory_format=torch.channels_last)
        with explicit_padding_on_tiny_depthwise(net, (1, 3, 32, 32)):
            stats = train_epochs(net, list(net.parameters()), loader, set_train=net.train,
                                 **common)
        return (net.to(memory_format=torch.contiguous_format).eval(),
                [s.seconds for s in stats], {"scheme": "no fake quantization (control)"})
    if method == "nncf":
        import nncf
        from nncf.quantization.advanced_parameters import (
            AdvancedQuantizationParameters,
            QuantizationParameters,
        )

        batches = [torch.from_numpy(calib[i:i + 64]) for i in range(0, len(calib), 64)]
        data = nncf.Dataset(batches)
        weights = QuantizationParameters(per_channel=per_channel, num_bits=7 if reduce_range else 8)
        net = nncf.quantize(copy.deepcopy(model), data, subset_size=len(batches),
                            target_device=nncf.TargetDevice.CPU,
                            advanced_parameters=AdvancedQuantizationParameters(
                                weights_quantization_params=weights))
        net = net.to(memory_format=torch.channels_last)
        with explicit_padding_on_tiny_depthwise(net, (1, 3, 32, 32)):
            stats = train_epochs(net, [p for p in net.parameters() if p.requires_grad], loader,
                                 set_train=net.train, **common)
        return (_weights_back(net.state_dict(), model, "nncf"), [s.seconds for s in stats],
                {"scheme": f"nncf {nncf.__version__} quantize (CPU target, weights "
                           f"{'per-channel' if per_channel else 'per-tensor'} "
                           f"{7 if reduce_range else 8}-bit) + training, BatchNorm in train mode"})
    if method == "pt2e":
        import dataclasses

        import torchao
        from torchao.quantization.pt2e import (
            FusedMovingAvgObsFakeQuantize,
            MovingAverageMinMaxObserver,
            MovingAveragePerChannelMinMaxObserver,
            move_exported_model_to_train,
        )
        from torchao.quantization.pt2e.quantize_pt2e import prepare_qat_pt2e
        from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
            X86InductorQuantizer,
            get_default_x86_inductor_quantization_config,
        )

        config = get_default_x86_inductor_quantization_config(is_qat=True)
        observer = (MovingAveragePerChannelMinMaxObserver if per_channel
                    else MovingAverageMinMaxObserver)
        qmin, qmax = (-64, 64) if reduce_range else (-128, 127)
        weight = dataclasses.replace(
            config.weight, quant_min=qmin, quant_max=qmax,
            qscheme=torch.per_channel_symmetric if per_channel else torch.per_tensor_symmetric,
            ch_axis=0 if per_channel else None,
            observer_or_fake_quant_ctr=FusedMovingAvgObsFakeQuantize.with_args(
                observer=observer, eps=2 ** -12))
        config = dataclasses.replace(config, weight=weight)
        example = torch.from_numpy(calib[:4])
        batch_dim = torch.export.Dim("batch", min=1, max=4096)
        exported = torch.export.export(copy.deepcopy(model).train(), (example,),
                                       dynamic_shapes=({0: batch_dim},)).module()
        net = prepare_qat_pt2e(exported, X86InductorQuantizer().set_global(config))
        stats = train_epochs(net, [p for p in net.parameters() if p.requires_grad], loader,
                             set_train=lambda: move_exported_model_to_train(net), **common)
        return (_weights_back(net.state_dict(), model, "pt2e"), [s.seconds for s in stats],
                {"scheme": f"torchao {torchao.__version__} prepare_qat_pt2e, "
                           f"X86InductorQuantizer QAT config, weights [{qmin}, {qmax}] "
                           f"{'per-channel' if per_channel else 'per-tensor'}, BatchNorm "
                           "folding simulated in train mode"})
    raise ValueError(method)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path,
                        default=Path("runs/mobilenet_int8/train/best.safetensors"))
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=0.002)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--ptq-settings", default=",".join(SETTINGS))
    parser.add_argument("--ptq-calibration-variants", default="entropy,percentile,minmax@32",
                        help="extra PTQ of the build's setting: a calibration method, or "
                             "minmax@N on N train images (calibration_indices, seed 0)")
    parser.add_argument("--qat-settings", default="build,per-tensor-8bit",
                        help="'build' = the build's own setting on this CPU")
    parser.add_argument("--compare-settings", default="per-tensor-8bit",
                        help="settings on which NNCF, PT2E and the FP32 control also run")
    parser.add_argument("--compare-methods",
                        default="fp32-finetune,folded-fp32-finetune,nncf,pt2e")
    parser.add_argument("--train-limit", type=int, help="smoke runs: N random train images")
    parser.add_argument("--test-limit", type=int, help="smoke runs: N random test images")
    parser.add_argument("--out", type=Path, default=RESULTS / "qat_mobilenet_v2.json")
    parser.add_argument("--merge", action="store_true",
                        help="add this run's QAT entries to an existing --out of the same "
                             "weights (checked by sha256 and FP32 top-1)")
    args = parser.parse_args()
    torch.set_num_threads(2)

    build_reduce_range = choose_reduce_range()
    build_setting = f"per-channel-{7 if build_reduce_range.reduce_range else 8}bit"

    def names(text: str) -> list[str]:
        out = [build_setting if s == "build" else s for s in text.split(",") if s]
        unknown = [s for s in out if s not in SETTINGS]
        if unknown:
            sys.exit(f"unknown settings {unknown}; valid: build, {', '.join(SETTINGS)}")
        return list(dict.fromkeys(out))

    model = demo_model(args.weights)
    mean, std = model.card.mean, model.card.std
    train = load_split("cifar10-jpeg", "train", val_size=0)  # all 50,000, as the demo recipe
    test = load_split("cifar10-jpeg", "test")
    picks, calib = build_calibration(train, mean, std)
    full_train = train
    rng = np.random.default_rng(0)  # smoke runs: a random subset (the splits are class-sorted)
    if args.train_limit:
        train = train.subset(np.sort(rng.choice(len(train), args.train_limit, replace=False)),
                             f"{args.train_limit} random images")
    if args.test_limit:
        test = test.subset(np.sort(rng.choice(len(test), args.test_limit, replace=False)),
                           f"{args.test_limit} random images")
    record: dict[str, Any] = {
        "benchmark": "qat_mobilenet_v2",
        "command": "flock /tmp/edgecnn-cpu.lock .venv/bin/python benchmarks/qat_mobilenet_v2.py "
                   + " ".join(sys.argv[1:]),
        "model": {"arch": "mobilenet_v2", "width_mult": 0.5, "cifar_stem": True,
                  "weights": str(args.weights),
                  "weights_sha256": hashlib.sha256(args.weights.read_bytes()).hexdigest()},
        "dataset": f"CIFAR-10 (JPEG copy) {test.description}, {len(test)} images",
        "train_images": len(train), "calibration": {
            "samples": len(picks), "seed": 0, "method": "minmax",
            "indices_sha256": hashlib.sha256(picks.tobytes()).hexdigest()},
        "build_setting": {"name": build_setting, "reason": build_reduce_range.reason},
        "finetune": {"epochs": args.epochs, "lr": args.lr, "schedule": "cosine to 0",
                     "optimizer": "SGD momentum 0.9 nesterov", "batch_size": args.batch_size,
                     "augment": "flip", "label_smoothing": LABEL_SMOOTHING},
        "context": run_context(threads=2),
        "ptq": {}, "qat": {},
    }
    started = time.perf_counter()
    wall_key = "wall_seconds"

    def save() -> None:
        record[wall_key] = time.perf_counter() - started
        atomic_write_json(args.out, record)

    with tempfile.TemporaryDirectory(prefix="qat-bench-") as tmp:
        ev = Evaluator(test, mean, std, Path(tmp), calib)
        fp32_path = ev.export(model, "base")
        record["fp32"], ev.fp32_predictions = ev.onnx(fp32_path)
        fp32_top1 = record["fp32"]["top1"]
        if args.merge and args.out.is_file():
            old = json.loads(args.out.read_text())
            same = all(old[k] == record[k] for k in ("model", "dataset", "calibration",
                                                     "finetune", "fp32"))
            if not same:
                sys.exit(f"--merge: {args.out} was measured on other weights, data or settings")
            old.setdefault("merged_commands", []).append(record["command"])
            record, wall_key = old, f"merged_wall_seconds_{len(old['merged_commands'])}"
        print(f"FP32 (ONNX Runtime): top-1 {fp32_top1:.2f}%", flush=True)
        save()
        for setting in names(args.ptq_settings):
            r = ev.int8(fp32_path, "base", setting)
            r["drop"] = fp32_top1 - r["top1"]
            record["ptq"][setting] = r
            print(f"PTQ {setting}: top-1 {r['top1']:.2f}% (drop {r['drop']:.2f})", flush=True)
            save()
        for variant in filter(None, args.ptq_calibration_variants.split(",")):
            # other calibrations of the build's setting: the method, or minmax on fewer images
            method, _, count = variant.partition("@")
            images = build_calibration(full_train, mean, std, int(count))[1] if count else calib
            r = ev.int8(fp32_path, "base", build_setting, method, images)
            r.update(drop=fp32_top1 - r["top1"], setting=build_setting, method=method,
                     calibration_images=len(images))
            record["ptq"][f"{build_setting} {variant}"] = r
            print(f"PTQ {build_setting} {variant}: top-1 {r['top1']:.2f}% "
                  f"(drop {r['drop']:.2f})", flush=True)
            save()
        compare = names(args.compare_settings)
        methods_for = {s: ["qat"] + ([m for m in args.compare_methods.split(",") if m]
                                     if s in compare else [])
                       for s in names(args.qat_settings)}
        for setting, methods in methods_for.items():
            if setting not in record["ptq"]:
                record["ptq"][setting] = ev.int8(fp32_path, "base", setting)
                record["ptq"][setting]["drop"] = fp32_top1 - record["ptq"][setting]["top1"]
            ptq = record["ptq"][setting]
            for method in methods:
                if method not in METHODS:
                    sys.exit(f"unknown method {method}; valid: {', '.join(METHODS)}")
                print(f"{method} on {setting} ...", flush=True)
                trained, seconds, notes = run_method(method, model, train, calib, mean, std,
                                                     setting, args)
                tuned_fp32 = ev.export(trained, f"{method}-{setting}")
                fp32_after, _ = ev.onnx(tuned_fp32)
                r = ev.int8(tuned_fp32, f"{method}-{setting}", setting)
                gap = fp32_top1 - ptq["top1"]
                r.update(fp32_top1_after_finetune=fp32_after["top1"], epoch_seconds=seconds,
                         seconds_per_epoch=float(np.mean(seconds)),
                         gain_over_ptq=r["top1"] - ptq["top1"],
                         recovered_fraction=((r["top1"] - ptq["top1"]) / gap
                                             if gap > 0 else None), **notes)
                earlier = record["qat"].setdefault(setting, {}).get(method)
                if earlier is not None:  # a merged rerun: keep the earlier run as a replicate
                    r["replicates"] = [*earlier.pop("replicates", []), earlier]
                record["qat"][setting][method] = r
                print(f"  {method} {setting}: INT8 top-1 {r['top1']:.2f}% (PTQ {ptq['top1']:.2f}"
                      f", FP32 {fp32_top1:.2f}; gained {r['gain_over_ptq']:+.2f} points of "
                      f"drop), FP32 after fine-tune {fp32_after['top1']:.2f}%, "
                      f"{r['seconds_per_epoch']:.0f} s/epoch", flush=True)
                save()
    save()


if __name__ == "__main__":
    main()
