"""Training a recipe's model: SGD with a schedule, a checkpoint every epoch, resume after a kill.

The run directory gets ``train/``: the per-epoch checkpoints (see :mod:`.checkpoint`),
``best.safetensors`` (chosen on the validation split), ``metrics.jsonl`` (one line per epoch)
and ``result.json`` (test accuracy of the best checkpoint, time, curve).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from edgecnn.atomic import atomic_write_bytes, atomic_write_json
from edgecnn.backends.torch_backend import TorchRunner
from edgecnn.data.folder import eval_resize
from edgecnn.data.loaders import BatchLoader
from edgecnn.data.splits import ImageSet, load_split
from edgecnn.errors import EdgeCNNError
from edgecnn.models import create_model
from edgecnn.models.onednn_workarounds import explicit_padding_on_tiny_depthwise
from edgecnn.models.surgery import freeze, replace_classifier
from edgecnn.models.weights_file import save_tensors
from edgecnn.settings import resolve_path
from edgecnn.train import checkpoint as ckpt
from edgecnn.train.distill import Distillation
from edgecnn.train.evaluate import evaluate
from edgecnn.train.schedules import Schedule, current_lr, make_optimizer

if TYPE_CHECKING:  # annotations only: train sits below the recipe layer
    from edgecnn.recipe.schema import Recipe, TrainSection


@dataclass
class TrainData:
    train: ImageSet
    val: ImageSet | None
    test: ImageSet | None


def build_model(recipe: Recipe, num_classes: int, device: Any = None) -> torch.nn.Module:
    """The recipe's model, from its checkpoint when it names one, with its classifier resized:
    a registered architecture (``model.arch``) or the user's own (``model.entry``)."""
    m = recipe.model
    n_cls = m.num_classes or num_classes
    if m.entry is not None:
        return _build_entry_model(recipe, n_cls, device)
    if m.arch is None:
        raise EdgeCNNError(f"{m.label} is an ONNX graph: there is no torch model to build")
    kwargs: dict[str, Any] = dict(m.options, in_chans=m.in_chans, cifar_stem=m.cifar_stem,
                                  separable=m.separable, resolution=m.resolution)
    if m.pretrained is None or device == "meta":
        return create_model(m.arch, num_classes=n_cls, device=device, **kwargs)
    # Load with the checkpoint's own classifier, then swap it when the class count differs.
    model = create_model(m.arch, pretrained=resolve_path(m.pretrained), **kwargs)
    if model.card.num_classes != n_cls or m.reset_classifier:
        replace_classifier(model, n_cls)
        model.card = type(model.card)(**{**model.card.__dict__, "num_classes": n_cls})
    return model


def _build_entry_model(recipe: Recipe, num_classes: int, device: Any) -> torch.nn.Module:
    from edgecnn.models.checkpoints import load_checkpoint
    from edgecnn.models.entry import build_entry_model, resolve_entry

    m = recipe.model
    model = build_entry_model(resolve_entry(m.entry, m.search_path), m.kwargs,
                              num_classes=num_classes, in_chans=m.in_chans,
                              resolution=m.resolution, mean=recipe.data.mean,
                              std=recipe.data.std, device=device)
    if m.pretrained is not None and device != "meta":
        load_checkpoint(model, resolve_path(m.pretrained))
    return model


def recipe_resolution(recipe: Recipe) -> int:
    """The input size the recipe's model is built for (built on the meta device to ask it)."""
    if recipe.model.resolution:
        return recipe.model.resolution
    return build_model(recipe, recipe.model.num_classes or 1000, device="meta").card.resolution


def pick_device(requested: str) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise EdgeCNNError("train.device is 'cuda' but no CUDA device is available; use 'cpu'")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def cpu_has_native_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def pick_precision(requested: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for plain FP32."""
    if requested == "auto":
        if device.type == "cuda":
            return torch.float16
        return torch.bfloat16 if cpu_has_native_bf16() else None
    if requested == "fp16" and device.type != "cuda":
        raise EdgeCNNError("train.precision 'fp16' needs CUDA; use 'bf16' or 'fp32' on CPU")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[requested]


def model_files(recipe: Recipe) -> list[Path]:
    """The files outside the run the model is made from: its checkpoint, the source file of its
    entry point, its ONNX graph. A change to any of them rebuilds what depends on the model."""
    m = recipe.model
    files = [Path(resolve_path(m.pretrained))] if m.pretrained else []
    if m.onnx:
        files.append(Path(resolve_path(m.onnx)))
    if m.entry:
        from edgecnn.models.entry import resolve_entry

        source = resolve_entry(m.entry, m.search_path).source_file
        files += [source] if source else []
    return files


def recipe_fingerprint(recipe: Recipe) -> str:
    """What the training depends on; a checkpoint of another fingerprint is not resumed.

    The recipe's model, data and train sections, what the dataset holds (not only its path),
    the content of the starting checkpoint and of the entry point's source file.
    """
    from edgecnn.data.fingerprint import dataset_fingerprint

    parts: dict[str, Any] = {k: getattr(recipe, k).model_dump(mode="json")
                             for k in ("model", "data", "train")}
    parts["dataset_content"] = dataset_fingerprint(recipe.data.dataset)
    from edgecnn.hashing import sha256_file

    if recipe.model.pretrained:
        path = Path(resolve_path(recipe.model.pretrained))
        parts["pretrained_sha256"] = sha256_file(path) if path.is_file() else None
    if recipe.model.entry:  # the model's code is part of what was trained
        parts["entry_sha256"] = [sha256_file(p) for p in model_files(recipe) if p.suffix == ".py"]
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def load_data(recipe: Recipe, resolution: int | None) -> TrainData:
    d = recipe.data
    # ImageNet-style training draws its random boxes from the whole central square at the
    # evaluation view's resize (short side resolution/0.875, e.g. 256 for 224), decoded once.
    random_resized = d.augment == "imagenet" and resolution is not None
    train_size = eval_resize(resolution) if random_resized else resolution
    train = load_split(d.dataset, "train", size=train_size,
                       resize=train_size if random_resized else None,
                       val_size=d.val_size, seed=d.split_seed)
    val = (load_split(d.dataset, "val", size=resolution, val_size=d.val_size, seed=d.split_seed)
           if d.val_size else None)
    try:
        test = load_split(d.dataset, "test", size=resolution)
    except EdgeCNNError:
        test = None  # a dataset without a test split is trained and validated only
    return TrainData(train, val, test)


class Trainer:
    """Trains the recipe's model per its ``train`` section into ``RUN_DIR/train``; or, given
    ``cfg`` and ``folder``, another training of the same data (a pruned model's fine-tuning)."""

    def __init__(self, recipe: Recipe, run_dir: Path, console: Console | None = None, *,
                 cfg: TrainSection | None = None, folder: Path | None = None,
                 distill: Distillation | None = None) -> None:
        cfg = cfg or recipe.train
        if cfg is None:
            raise EdgeCNNError(f"recipe {recipe.name}: no train section to run")
        self.recipe, self.cfg = recipe, cfg
        self.folder = folder or run_dir / "train"
        self.console = console or Console()
        self.device = pick_device(self.cfg.device)
        self.autocast_dtype = pick_precision(self.cfg.precision, self.device)
        # a teacher's soft targets join the labels (a pruned model learning from its dense one)
        self.distill = distill.to(self.device, self.cfg.channels_last) if distill else None

    # -- one epoch -----------------------------------------------------------------------------
    def _train_epoch(self, model, loader, optimizer, schedule, frozen, progress,
                     label: str, after_step: Callable[[], None] | None) -> dict:
        model.train()
        for module in frozen:
            module.eval()  # frozen BatchNorm keeps the checkpoint's statistics
        task = progress.add_task("train", total=len(loader), epoch=label)
        loss_sum = correct = seen = 0
        start = time.perf_counter()
        for x, y in loader:
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            with self._autocast():
                logits = model(x)
                if self.distill is None:
                    loss = F.cross_entropy(logits, y, label_smoothing=self.cfg.label_smoothing)
                else:
                    loss = self.distill.loss(logits, x, y, self.cfg.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(optimizer)
            self.scaler.update()
            if after_step is not None:
                after_step()
            schedule.after_batch()
            loss_sum += loss.item() * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
            progress.update(task, advance=1)
        progress.remove_task(task)
        elapsed = time.perf_counter() - start
        return {"train_loss": loss_sum / seen, "train_top1": 100.0 * correct / seen,
                "train_seconds": elapsed, "images_per_second": seen / elapsed}

    def _cpu_speedups(self, model, input_shape) -> contextlib.AbstractContextManager:
        if self.device.type != "cpu":
            return contextlib.nullcontext()
        return explicit_padding_on_tiny_depthwise(model, input_shape)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _evaluate(self, model, data: ImageSet | None, mean, std) -> dict | None:
        if data is None:
            return None
        runner = TorchRunner(model, device=str(self.device), channels_last=self.cfg.channels_last)
        return evaluate(runner, data, mean, std, self.recipe.data.eval_batch_size).to_dict()

    # -- the whole run -------------------------------------------------------------------------
    def run(self, restart: bool = False, *, model: torch.nn.Module | None = None,
            fingerprint: str | None = None,
            after_step: Callable[[], None] | None = None) -> dict[str, Any]:
        """Train (resuming a killed run of the same fingerprint) and return the result.

        ``model``: train this module instead of building the recipe's (it is trained in place
        and ends with the best epoch's weights); ``fingerprint`` then names what it was made
        from. ``after_step`` runs after every optimizer step (re-applying sparsity masks).
        """
        cfg, recipe = self.cfg, self.recipe
        torch.manual_seed(cfg.seed)
        resolution = recipe_resolution(recipe)
        data = load_data(recipe, resolution)
        if model is None:
            model = build_model(recipe, len(data.train.classes))
        model = model.to(self.device)
        mean = recipe.data.mean or model.card.mean
        std = recipe.data.std or model.card.std
        if cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        frozen = freeze(model, cfg.freeze)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = make_optimizer(params, cfg)
        loader = BatchLoader(data.train, cfg.batch_size, mean, std, shuffle=True,
                             augment=recipe.data.augment, seed=cfg.seed, drop_last=True,
                             channels_last=cfg.channels_last, crop_size=resolution,
                             # a producer thread only helps when the CPU is free (GPU training)
                             prefetch=2 if self.device.type == "cuda" else 0)
        if len(loader) == 0:
            raise EdgeCNNError(f"train.batch_size {cfg.batch_size} is larger than the train split "
                               f"({len(data.train)} images)")
        schedule = Schedule(optimizer, cfg, len(loader))
        self.scaler = torch.amp.GradScaler(self.device.type,
                                           enabled=self.autocast_dtype == torch.float16)
        fingerprint = fingerprint or recipe_fingerprint(recipe)
        history, best, start_epoch = [], {"val_top1": -1.0, "epoch": 0}, 1
        last = ckpt.read_last(self.folder)
        if last and not restart:
            if last.get("fingerprint") != fingerprint:
                raise EdgeCNNError(
                    f"{self.folder} holds a training of a different recipe; use --force to "
                    "start over or --out for another run directory")
            record = ckpt.restore(self.folder, model, optimizer)
            schedule.load_state_dict(record["schedule"])
            history, best = record["history"], record["best"]
            start_epoch = record["epoch"] + 1
            self.console.print(f"resuming {recipe.name} after epoch {record['epoch']} "
                               f"of {cfg.epochs}")
        elif restart:
            for stale in self.folder.glob("*"):
                stale.unlink()
        metrics_path = self.folder / "metrics.jsonl"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.console.print(
            f"training {recipe.model.arch} on {data.train.description} "
            f"({len(data.train)} images; val {len(data.val) if data.val else 0}) for {cfg.epochs} "
            f"epochs on {self.device}, autocast {self.autocast_dtype or 'off'}, "
            f"{torch.get_num_threads()} threads")
        columns = (TextColumn("epoch {task.fields[epoch]}"), BarColumn(),
                   TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                   TextColumn("eta"), TimeRemainingColumn())
        # Weights saved inside the block are unaffected: the workaround changes no parameter.
        with self._cpu_speedups(model, (1, recipe.model.in_chans, resolution, resolution)):
            for epoch in range(start_epoch, cfg.epochs + 1):
                torch.manual_seed(cfg.seed * 1000 + epoch)  # dropout etc. repeat after a resume
                loader.set_epoch(epoch)
                with Progress(*columns, console=self.console, transient=True,
                              disable=not self.console.is_terminal) as progress:
                    stats = self._train_epoch(model, loader, optimizer, schedule, frozen, progress,
                                              f"{epoch}/{cfg.epochs}", after_step)
                val = self._evaluate(model, data.val, mean, std)
                val_top1 = val["top1"] if val else stats["train_top1"]
                row = {"epoch": epoch, "lr": current_lr(optimizer), **stats,
                       "val_top1": val["top1"] if val else None,
                       "val_top5": val["top5"] if val else None}
                schedule.after_epoch(val_top1)
                history.append(row)
                if val_top1 > best["val_top1"]:
                    best = {"val_top1": val_top1, "epoch": epoch}
                    save_tensors(self.folder / ckpt.BEST, model.state_dict(),
                                      {"epoch": str(epoch), "fingerprint": fingerprint})
                ckpt.save_epoch(self.folder, epoch, model, optimizer, {
                    "fingerprint": fingerprint, "schedule": schedule.state_dict(),
                    "history": history, "best": best})
                atomic_write_bytes(metrics_path, "".join(json.dumps(r) + "\n"
                                                              for r in history).encode())
                held_out = f"val {row['val_top1']:5.2f}%" if val else "no val split"
                self.console.print(
                    f"epoch {epoch:>3}/{cfg.epochs}  loss {stats['train_loss']:.3f}  "
                    f"train {stats['train_top1']:5.1f}%  {held_out}  lr {row['lr']:.4f}  "
                    f"{stats['train_seconds']:.0f} s  {stats['images_per_second']:.0f} img/s")
        return self._finish(model, data, mean, std, history, best, fingerprint)

    def _finish(self, model, data: TrainData, mean, std, history, best, fingerprint) -> dict:
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(self.folder / ckpt.BEST)))
        test = self._evaluate(model, data.test, mean, std)
        result = {
            "recipe": self.recipe.name, "arch": self.recipe.model.label,
            "fingerprint": fingerprint, "best_epoch": best["epoch"],
            "best_val_top1": best["val_top1"], "test": test,
            # without a val split the best epoch is chosen on train accuracy, never on test
            "selected_on": "val" if data.val is not None else "train",
            "train_seconds": sum(r["train_seconds"] for r in history),
            "epochs": len(history), "device": str(self.device),
            "autocast": str(self.autocast_dtype), "threads": torch.get_num_threads(),
            "mean": list(mean), "std": list(std), "curve": history,
            "weights": ckpt.BEST, "dataset": data.train.description,
        }
        atomic_write_json(self.folder / "result.json", result)
        if test:
            chosen_on = "val" if data.val is not None else "train, no val split:"
            self.console.print(f"best epoch {best['epoch']} ({chosen_on} "
                               f"{best['val_top1']:.2f}%): "
                               f"test top-1 {test['top1']:.2f}%  top-5 {test['top5']:.2f}%")
        return result

