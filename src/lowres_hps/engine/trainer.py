"""The training loop every method shares: a :class:`Task` gives the model, data and loss;
:class:`Trainer` does the rest (seeding, data parallelism, AMP, logging, exact resume).
"""
from __future__ import annotations

import bisect
import dataclasses
import importlib
import importlib.util
import inspect
import json
import logging
import math
import os
import random
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, get_worker_info
from tqdm import tqdm

from lowres_hps.engine.checkpoint import (
    CheckpointError,
    capture_rng_state,
    load_checkpoint,
    remove_stale_temporaries,
    restore_rng_state,
    save_checkpoint,
    save_weights,
)
from lowres_hps.core.config import dump_config, save_config
from lowres_hps.engine.config import OptimConfig, TrainConfig, TrainerConfig
from lowres_hps.engine.distributed import (
    ResumableDistributedSampler,
    all_gather_objects,
    all_reduce_mean,
    barrier,
    init_distributed,
    per_rank_batch_size,
)
from lowres_hps.engine.logging import MetricLogger

__all__ = [
    "Task",
    "Trainer",
    "build_task",
    "import_object",
    "seed_everything",
    "seed_worker",
    "batch_to_device",
    "build_optimizer",
    "base_lr",
    "build_scheduler",
    "LRSchedule",
    "SampleSeededDataset",
]

_log = logging.getLogger(__name__)

CHECKPOINT_NAME = "last.pt"
PREVIOUS_CHECKPOINT_NAME = "previous.pt"  # the checkpoint before last.pt: a fallback when last.pt is damaged
DAMAGED_CHECKPOINT_NAME = "last.damaged.pt"  # a damaged last.pt, set aside on resume
WEIGHTS_NAME = "model.safetensors"
BEST_WEIGHTS_NAME = "best.safetensors"  # the weights of the best validation epoch (TrainerConfig.keep_best)
CONFIG_NAME = "config.yaml"


@dataclass
class Task:
    """What a method hands to the :class:`Trainer`.

    Attributes:
        model: the network; the trainer moves it to the device (and wraps it for data parallelism).
        train_dataset: map-style dataset. For an exactly resumable run, draw augmentation randomness
            from the global ``random``/``numpy``/``torch`` RNGs: the trainer seeds them per sample
            from ``(seed, epoch, index)`` (see :class:`SampleSeededDataset`).
        loss: ``loss(model, batch) -> (scalar loss, {name: float or 0-d tensor})``; ``batch`` is
            already on the device, ``model`` may be the DDP wrapper (call it, do not bypass it).
            The loss must be a mean over the batch: DDP averages gradients over processes.
            Return the same metric names at every step (they are averaged over steps and processes).
        val_dataset, evaluate: optional; ``evaluate(model, batches) -> {name: float}`` runs on rank 0
            under ``torch.no_grad()`` with the model in eval mode; ``batches`` yields device batches.
        collate_fn: optional ``DataLoader`` collate function for both datasets.
        on_epoch_start: optional ``on_epoch_start(epoch)`` called before each epoch (0-based), also
            on resume, e.g. to switch training stages by epoch.
    """

    model: nn.Module
    train_dataset: Dataset
    loss: Callable[[nn.Module, Any], tuple[torch.Tensor, Mapping[str, Any]]]
    val_dataset: Dataset | None = None
    evaluate: Callable[[nn.Module, Iterable[Any]], Mapping[str, float]] | None = None
    collate_fn: Callable[[list[Any]], Any] | None = None
    on_epoch_start: Callable[[int], None] | None = None


# ---------------------------------------------------------------------------------------------
# Task import


def import_object(spec: str) -> Any:
    """``"package.module:name"`` or ``"path/to/file.py:name"`` -> the object."""
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"expected 'package.module:name' or 'path/file.py:name', got {spec!r}")
    if module_name.endswith(".py"):
        path = Path(module_name)
        if not path.is_file():
            raise FileNotFoundError(f"task file not found: {module_name} (from {spec!r})")
        unique_name = f"_lowres_hps_task_{path.stem}"
        module_spec = importlib.util.spec_from_file_location(unique_name, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[unique_name] = module  # so that pickling (DataLoader workers) finds it
        module_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                raise ValueError(f"cannot import module {module_name!r} of {spec!r}: {exc}") from None
            raise
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ValueError(f"module {module_name!r} has no {attr!r} (from {spec!r})") from None


def build_task(spec: str, task_args: Mapping[str, Any] | None = None) -> Task:
    """Import the task factory ``spec`` and call it with ``task_args`` as keyword arguments."""
    factory = import_object(spec)
    if not callable(factory):
        raise ValueError(f"task factory {spec!r} is not callable")
    task_args = dict(task_args or {})
    try:
        inspect.signature(factory).bind(**task_args)
    except TypeError as exc:  # a typo in task_args is a config error, not a crash
        raise ValueError(f"task_args do not fit {spec!r}: {exc}") from None
    except ValueError:  # no signature available (some builtins): let the call decide
        pass
    task = factory(**task_args)
    if not isinstance(task, Task):
        raise ValueError(f"task factory {spec!r} returned {type(task).__name__}, expected lowres_hps.engine.Task")
    return task


# ---------------------------------------------------------------------------------------------
# Seeding and data


def seed_everything(seed: int) -> None:
    """Seed ``random``, ``numpy`` and ``torch`` (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def seed_worker(worker_id: int) -> None:
    """``DataLoader`` ``worker_init_fn``: torch seeds each worker; seed ``random`` and ``numpy`` from it."""
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def _mix_seed(*values: int) -> int:
    # splitmix64-style mixing: distinct (seed, epoch, index) give unrelated 64-bit seeds.
    mask = (1 << 64) - 1
    h = 0x9E3779B97F4A7C15
    for v in values:
        h = ((h ^ (v & mask)) * 0xBF58476D1CE4E5B9) & mask
        h = ((h ^ (h >> 31)) * 0x94D049BB133111EB) & mask
        h ^= h >> 29
    return h


class SampleSeededDataset(Dataset):
    """Seeds the global RNGs from ``(seed, epoch, index)`` before each ``dataset[index]``.

    Random augmentations thus depend only on the sample and the epoch, not on the number of
    workers or processes, nor on where a run was resumed. In the main process (no workers) the
    RNG states are restored afterwards so that the model's randomness (dropout) is unaffected.
    Only the CPU torch generator is seeded.
    """

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset = dataset
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        in_main_process = get_worker_info() is None
        if in_main_process:
            saved = random.getstate(), np.random.get_state(), torch.get_rng_state()
        sample_seed = _mix_seed(self.seed, self.epoch, index)
        random.seed(sample_seed)
        np.random.seed(sample_seed % 2**32)
        torch.default_generator.manual_seed(sample_seed)
        try:
            return self.dataset[index]
        finally:
            if in_main_process:
                random.setstate(saved[0])
                np.random.set_state(saved[1])
                torch.set_rng_state(saved[2])


def batch_to_device(batch: Any, device: torch.device, non_blocking: bool = False) -> Any:
    """Tensors of a (nested) batch moved to ``device``: mappings, lists, tuples, namedtuples, dataclasses."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=non_blocking)
    if isinstance(batch, Mapping):
        return {k: batch_to_device(v, device, non_blocking) for k, v in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(batch_to_device(v, device, non_blocking) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(batch_to_device(v, device, non_blocking) for v in batch)
    if dataclasses.is_dataclass(batch) and not isinstance(batch, type):
        changes = {f.name: batch_to_device(getattr(batch, f.name), device, non_blocking)
                   for f in dataclasses.fields(batch) if f.init}
        return dataclasses.replace(batch, **changes)
    return batch


class _DeviceBatches:
    """Iterates a loader, moving each batch to ``device``."""

    def __init__(self, loader: DataLoader, device: torch.device) -> None:
        self.loader, self.device = loader, device

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Any]:
        for batch in self.loader:
            yield batch_to_device(batch, self.device, non_blocking=self.loader.pin_memory)


# ---------------------------------------------------------------------------------------------
# Optimizer and schedule


def build_optimizer(params: Iterable[nn.Parameter] | Iterable[tuple[str, nn.Parameter]], cfg: OptimConfig
                    ) -> torch.optim.Optimizer:
    """Adam, AdamW or SGD from ``cfg`` over the parameters that need gradients.

    ``params`` are parameters or ``(name, parameter)`` pairs (``model.named_parameters()``); ``cfg.lr_mult`` needs
    the names: each parameter's learning rate is ``lr`` times the factor of the longest matching name prefix (1
    without one). Factor-0 parameters are left out. The schedule multiplies every group alike.
    """
    items = list(params)
    named = bool(items) and isinstance(items[0], tuple)
    if cfg.lr_mult and not named:
        raise ValueError("optim.lr_mult needs named parameters: pass model.named_parameters()")
    groups: dict[float, list[nn.Parameter]] = {}
    for item in items:
        name, parameter = item if named else ("", item)
        if not parameter.requires_grad:
            continue
        prefixes = [prefix for prefix in cfg.lr_mult if name.startswith(prefix)]
        factor = float(cfg.lr_mult[max(prefixes, key=len)]) if prefixes else 1.0
        if factor > 0:
            groups.setdefault(factor, []).append(parameter)
    param_groups = [{"params": group, "lr": cfg.lr * factor, "lr_mult": factor} for factor, group in sorted(groups.items(), reverse=True)]
    if cfg.name == "adam":
        return torch.optim.Adam(param_groups, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    if cfg.name == "adamw":
        return torch.optim.AdamW(param_groups, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    if cfg.name == "sgd":
        return torch.optim.SGD(param_groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                               weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.name!r}")


def base_lr(optimizer: torch.optim.Optimizer) -> float:
    """The scheduled learning rate before ``lr_mult`` factors (the one ``metrics.csv`` logs)."""
    group = optimizer.param_groups[0]
    return group["lr"] / group.get("lr_mult", 1.0)


@dataclass
class LRSchedule:
    """Learning-rate factor after ``step`` optimizer steps: linear warm-up times a constant,
    cosine (from the end of the warm-up to ``total_steps``) or step (``gamma`` at each milestone) schedule.

    Run by torch's ``LambdaLR``. Written out rather than chained from ``LinearLR``, ``CosineAnnealingLR`` and
    ``MultiStepLR`` (``SequentialLR``/``ChainedScheduler``): those keep their shape (``T_max``, milestones) in
    their state, so a run resumed with more epochs would keep the old schedule, and ``CosineAnnealingLR`` rises
    again after ``T_max``; a closed form of the step count resumes exactly and follows the current config.
    """

    schedule: str
    total_steps: int
    warmup_steps: int = 0
    warmup_start_factor: float = 0.001
    min_lr_factor: float = 0.0
    milestone_steps: tuple[int, ...] = ()
    gamma: float = 0.1

    def __call__(self, step: int) -> float:
        if self.schedule == "constant":
            factor = 1.0
        elif self.schedule == "cosine":
            span = max(1, self.total_steps - self.warmup_steps)
            progress = min(1.0, max(0.0, (step - self.warmup_steps) / span))
            factor = self.min_lr_factor + (1 - self.min_lr_factor) * 0.5 * (1 + math.cos(math.pi * progress))
        elif self.schedule == "step":
            factor = self.gamma ** bisect.bisect_right(self.milestone_steps, step)
        else:
            raise ValueError(f"unknown schedule {self.schedule!r}")
        if step < self.warmup_steps:
            factor *= self.warmup_start_factor + (1 - self.warmup_start_factor) * step / self.warmup_steps
        return factor


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: OptimConfig, steps_per_epoch: int, epochs: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step ``LambdaLR`` for ``cfg.schedule`` (milestones are given in epochs)."""
    schedule = LRSchedule(
        schedule=cfg.schedule,
        total_steps=steps_per_epoch * epochs,
        warmup_steps=cfg.warmup_steps,
        warmup_start_factor=cfg.warmup_start_factor,
        min_lr_factor=cfg.min_lr_factor,
        milestone_steps=tuple(m * steps_per_epoch for m in cfg.milestones),
        gamma=cfg.gamma,
    )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


# ---------------------------------------------------------------------------------------------
# Trainer


class Trainer:
    """Trains ``task`` with ``cfg``; run folder ``cfg.out_dir`` gets ``config.yaml``,
    ``metrics.csv``, ``last.pt`` (with the one before it as ``previous.pt``) and, at the end,
    ``model.safetensors``.

    Under ``torchrun`` each process trains on its share of every global batch
    (``cfg.batch_size / WORLD_SIZE``) with DistributedDataParallel; only rank 0 writes files.
    ``fit(resume=True)`` continues from ``last.pt``, mid-epoch included, as if never stopped; when
    ``last.pt`` is damaged (e.g. truncated), from ``previous.pt``, with a warning. Temporary files that a
    killed save left behind are removed when ``fit`` starts.

    Args:
        cfg: a :class:`TrainConfig` (saved whole in the run folder) or just its ``trainer`` part.
        task: the model, data and loss.
    """

    def __init__(self, cfg: TrainConfig | TrainerConfig, task: Task) -> None:
        self.run_config = cfg
        self.cfg = cfg.trainer if isinstance(cfg, TrainConfig) else cfg
        self.task = task
        self.out_dir = Path(self.cfg.out_dir)
        self.dist = init_distributed(self.cfg.device)
        self.device = self.dist.device
        if self.cfg.deterministic and self.device.type == "cuda":
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # needed by deterministic cuBLAS

        self.model = task.model.to(self.device)
        if self.cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        if self.dist.is_distributed:
            self.train_model: nn.Module = DistributedDataParallel(
                self.model,
                device_ids=[self.device] if self.device.type == "cuda" else None,
                find_unused_parameters=self.cfg.find_unused_parameters,
            )
        else:
            self.train_model = self.model

        self.per_rank_batch_size = per_rank_batch_size(self.cfg.batch_size, self.dist.world_size)
        self.train_dataset = SampleSeededDataset(task.train_dataset, self.cfg.seed)
        self.sampler = ResumableDistributedSampler(
            self.train_dataset, num_replicas=self.dist.world_size, rank=self.dist.rank,
            shuffle=self.cfg.shuffle, seed=self.cfg.seed, drop_last=self.cfg.drop_last,
        )
        self.generator = torch.Generator()
        self.loader = DataLoader(
            self.train_dataset, batch_size=self.per_rank_batch_size, sampler=self.sampler,
            num_workers=self.cfg.num_workers, collate_fn=task.collate_fn,
            pin_memory=self.device.type == "cuda", drop_last=self.cfg.drop_last,
            worker_init_fn=seed_worker, generator=self.generator,
        )
        rounding = math.floor if self.cfg.drop_last else math.ceil
        self.steps_per_epoch = rounding(self.sampler.num_samples / self.per_rank_batch_size)
        if self.steps_per_epoch == 0:
            raise ValueError(
                f"the training set ({len(self.train_dataset)} samples) is smaller than one global batch "
                f"({self.cfg.batch_size}) with drop_last"
            )

        self.optimizer = build_optimizer(self.model.named_parameters(), self.cfg.optim)
        self.scheduler = build_scheduler(self.optimizer, self.cfg.optim, self.steps_per_epoch, self.cfg.epochs)
        self.amp_dtype = torch.bfloat16 if self.device.type == "cpu" else torch.float16
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.cfg.amp and self.amp_dtype == torch.float16)

        self.epoch = 0  # completed epochs
        self.step_in_epoch = 0  # completed steps of the current epoch
        self.global_step = 0  # completed optimizer steps
        self._window_count = 0  # steps accumulated since the last metrics row
        self._window_sums: dict[str, Any] = {}
        self._last_lr = base_lr(self.optimizer)
        self.best: dict[str, float] | None = None  # {"value", "epoch", "global_step"} of keep_best's best epoch

    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / CHECKPOINT_NAME

    def fit(self, resume: bool = False) -> dict[str, float]:
        """Train to ``cfg.epochs``; returns the last validation metrics (empty without validation)."""
        previous_flags = _set_determinism(self.cfg.deterministic)
        logger = None
        last_val: dict[str, float] = {}
        try:
            if self.dist.is_main:
                self._remove_stale_temporaries()
            if resume:
                self._restore()
            else:
                self._start_fresh()
            logger = MetricLogger(self.out_dir, enabled=self.dist.is_main,
                                  resume_step=self.global_step if resume else None)
            while self.epoch < self.cfg.epochs:
                self._train_epoch(logger)
                if self.cfg.val_every_epochs and self.epoch % self.cfg.val_every_epochs == 0:
                    val = self.validate()
                    if val:
                        last_val = val
                        logger.log(self.global_step, self.epoch - 1, {f"val/{k}": v for k, v in val.items()})
                        self._keep_if_best(val)
                self.save_checkpoint()
            if self.dist.is_main:
                metadata = {"config": json.dumps(dump_config(self.run_config)), "global_step": str(self.global_step)}
                save_weights(self.model, self.out_dir / WEIGHTS_NAME, metadata)
            barrier()
        finally:
            if logger is not None:
                logger.close()
            _restore_determinism(previous_flags)
        return last_val

    def _start_fresh(self) -> None:
        if self.checkpoint_path.exists():  # checked by every rank, so that all of them stop
            raise ValueError(f"{self.checkpoint_path} exists: resume (--resume) or choose another run folder")
        if self.dist.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            save_config(self.run_config, self.out_dir / CONFIG_NAME)
            (self.out_dir / BEST_WEIGHTS_NAME).unlink(missing_ok=True)  # another run's, without its last.pt
        seed_everything(self.cfg.seed + self.dist.rank)

    def _train_epoch(self, logger: MetricLogger) -> None:
        epoch, skip = self.epoch, self.step_in_epoch
        self.sampler.set_epoch(epoch)
        self.sampler.set_start_index(skip * self.per_rank_batch_size)
        self.train_dataset.epoch = epoch
        if self.task.on_epoch_start is not None:
            self.task.on_epoch_start(epoch)
        self.generator.manual_seed(_mix_seed(self.cfg.seed, epoch, self.dist.rank))  # worker seeds
        self.train_model.train()
        show_bar = self.dist.is_main and self.cfg.progress_bar and sys.stderr.isatty()
        with tqdm(total=self.steps_per_epoch, initial=skip, disable=not show_bar, dynamic_ncols=True,
                  desc=f"epoch {epoch + 1}/{self.cfg.epochs}") as bar:
            for batch in self.loader:
                self._train_step(batch)
                self.global_step += 1
                self.step_in_epoch += 1
                bar.update(1)
                if self.global_step % self.cfg.log_every == 0:
                    row = self._flush_window()
                    logger.log(self.global_step, epoch, row)
                    bar.set_postfix(loss=f"{row['loss']:.4g}", lr=f"{row['lr']:.3g}", refresh=False)
                    if not show_bar and self.dist.is_main:
                        _log.info("epoch %d step %d: %s", epoch, self.global_step,
                                  ", ".join(f"{k}={v:.4g}" for k, v in row.items()))
                if (self.cfg.ckpt_every_steps and self.global_step % self.cfg.ckpt_every_steps == 0
                        and self.step_in_epoch < self.steps_per_epoch):  # the epoch's end saves anyway
                    self.save_checkpoint()
        self.epoch, self.step_in_epoch = epoch + 1, 0

    def _train_step(self, batch: Any) -> None:
        batch = batch_to_device(batch, self.device, non_blocking=self.loader.pin_memory)
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.cfg.amp):
            loss, logs = self.task.loss(self.train_model, batch)
        if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
            raise ValueError(f"task.loss must return a scalar tensor first, got {type(loss).__name__} "
                             f"of shape {tuple(getattr(loss, 'shape', ()))}")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.cfg.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self._last_lr = base_lr(self.optimizer)  # the lr this step used
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        # Running sums stay on the device: no synchronisation until the row is written.
        values = {"loss": loss.detach().float(), **{k: v.detach().float() if isinstance(v, torch.Tensor) else v
                                                     for k, v in logs.items()}}
        for key, value in values.items():
            self._window_sums[key] = self._window_sums.get(key, 0.0) + value
        self._window_count += 1

    def _flush_window(self) -> dict[str, float]:
        """Mean of each metric over the steps since the last row (and over the processes), plus lr."""
        means = {k: float(v) / self._window_count for k, v in self._window_sums.items()}
        means = all_reduce_mean(means, self.device)
        if not math.isfinite(means["loss"]) and not self.scaler.is_enabled():
            raise FloatingPointError(f"the loss is {means['loss']} at step {self.global_step}")
        self._window_sums, self._window_count = {}, 0
        ordered = {"loss": means.pop("loss"), "lr": self._last_lr}
        ordered.update(means)
        return ordered

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """``task.evaluate`` on rank 0 (others wait); empty when the task has no validation."""
        metrics: dict[str, float] = {}
        if self.dist.is_main and self.task.val_dataset is not None and self.task.evaluate is not None:
            loader = DataLoader(self.task.val_dataset, batch_size=self.per_rank_batch_size, shuffle=False,
                                num_workers=self.cfg.num_workers, collate_fn=self.task.collate_fn,
                                pin_memory=self.device.type == "cuda", worker_init_fn=seed_worker)
            was_training = self.model.training
            self.model.eval()
            with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.cfg.amp):
                result = self.task.evaluate(self.model, _DeviceBatches(loader, self.device))
                metrics = {k: float(v) for k, v in result.items()}
            self.model.train(was_training)
        barrier()
        return metrics

    def _keep_if_best(self, val: Mapping[str, float]) -> None:
        """Write ``best.safetensors`` when ``keep_best``'s metric beats every earlier epoch (rank 0)."""
        name = self.cfg.keep_best
        if name is None or not self.dist.is_main:
            return
        if name not in val:
            raise KeyError(f"trainer.keep_best is {name!r}, but validation gives {', '.join(sorted(val))}")
        value = float(val[name])
        sign = 1.0 if self.cfg.keep_best_mode == "max" else -1.0
        if not math.isfinite(value) or (self.best is not None and sign * value <= sign * self.best["value"]):
            return
        self.best = {"value": value, "epoch": self.epoch, "global_step": self.global_step}
        metadata = {"config": json.dumps(dump_config(self.run_config)), "global_step": str(self.global_step),
                    "best": json.dumps({"metric": name, **self.best})}
        save_weights(self.model, self.out_dir / BEST_WEIGHTS_NAME, metadata)

    def save_checkpoint(self) -> None:
        """Atomically write ``last.pt`` (rank 0) with everything needed to continue exactly."""
        # Per-process state (RNG, unlogged metric sums) is gathered so that every rank resumes its own.
        window = {"count": self._window_count, "sums": {k: float(v) for k, v in self._window_sums.items()}}
        per_rank = all_gather_objects({"rng": capture_rng_state(self.device), "log_window": window})
        if self.dist.is_main:
            save_checkpoint({
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(),
                "per_rank": per_rank,
                "epoch": self.epoch,
                "step_in_epoch": self.step_in_epoch,
                "global_step": self.global_step,
                "world_size": self.dist.world_size,
                "config": dump_config(self.run_config),
                "best": self.best,
            }, self.checkpoint_path, previous=self.out_dir / PREVIOUS_CHECKPOINT_NAME)
        barrier()

    def _remove_stale_temporaries(self) -> None:
        names = (CHECKPOINT_NAME, PREVIOUS_CHECKPOINT_NAME, WEIGHTS_NAME, BEST_WEIGHTS_NAME, "metrics.csv")
        for path, size in remove_stale_temporaries(self.out_dir, names):
            _log.info("removed %s (%.1f MB), left behind by a save that was killed", path, size / 1e6)

    def _load_resume_state(self) -> tuple[dict[str, Any], Path]:
        """The state to resume from and its file: ``last.pt``, else (damaged) ``previous.pt``.

        Raises:
            FileNotFoundError: no ``last.pt`` (nor ``previous.pt``).
            CheckpointError: neither checkpoint can be read; the message says why, for both.
        """
        last, previous = self.checkpoint_path, self.out_dir / PREVIOUS_CHECKPOINT_NAME
        try:
            return _checked_state(load_checkpoint(last, map_location=self.device), last), last
        except (FileNotFoundError, CheckpointError) as exc:
            if not previous.is_file():
                if isinstance(exc, FileNotFoundError):
                    raise
                raise CheckpointError(f"cannot resume: {exc}; there is no earlier checkpoint ({previous.name}) to "
                                      f"fall back to: train into a new run folder, or without --resume") from None
            problem = exc
        try:
            state = _checked_state(load_checkpoint(previous, map_location=self.device), previous)
        except CheckpointError as exc:
            raise CheckpointError(f"cannot resume: {problem}; the earlier checkpoint is no better: {exc}") from None
        if self.dist.is_main:
            note = ""
            if last.is_file():  # set aside, so that the next save does not keep it as previous.pt
                os.replace(last, self.out_dir / DAMAGED_CHECKPOINT_NAME)
                note = f" ({last.name} kept as {DAMAGED_CHECKPOINT_NAME})"
            warnings.warn(f"{problem}; resuming from the checkpoint before it, {previous} "
                          f"(step {state['global_step']}){note}", stacklevel=4)
        return state, previous

    def _restore(self) -> None:
        state, path = self._load_resume_state()
        if state["step_in_epoch"] > self.steps_per_epoch:
            raise ValueError(f"{path} stopped at step {state['step_in_epoch']} of its epoch, but an epoch now has "
                             f"{self.steps_per_epoch} steps (batch size or data changed)")
        changed = _changed_keys(state["config"], dump_config(self.run_config))
        if changed and self.dist.is_main:
            warnings.warn(f"resuming {path} with a changed config: {', '.join(changed)}", stacklevel=3)
            # The run folder describes the run as it continues; the earlier config is kept beside it.
            previous = self.out_dir / f"config.before_step{state['global_step']}.yaml"
            if (self.out_dir / CONFIG_NAME).exists():
                os.replace(self.out_dir / CONFIG_NAME, previous)
            save_config(self.run_config, self.out_dir / CONFIG_NAME)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        # Position from the checkpoint, schedule shape from the current config (e.g. more epochs).
        scheduler_state = dict(state["scheduler"], lr_lambdas=[None] * len(self.scheduler.lr_lambdas))
        self.scheduler.load_state_dict(scheduler_state)
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.step_in_epoch, self.global_step = state["epoch"], state["step_in_epoch"], state["global_step"]
        self.best = state.get("best")  # absent in checkpoints written before keep_best existed
        per_rank = state["per_rank"]
        if len(per_rank) == self.dist.world_size:
            mine = per_rank[self.dist.rank]
            restore_rng_state(mine["rng"], self.device)
            self._window_count = mine["log_window"]["count"]
            self._window_sums = dict(mine["log_window"]["sums"])
        else:  # another number of processes: same data order, but fresh per-process RNG streams
            if self.dist.is_main:
                warnings.warn(f"{path} was written by {len(per_rank)} processes, resuming with "
                              f"{self.dist.world_size}: model randomness (dropout) will differ", stacklevel=3)
            seed_everything(_mix_seed(self.cfg.seed, self.global_step, self.dist.rank) % 2**63)


_STATE_KEYS = ("model", "optimizer", "scheduler", "scaler", "per_rank", "epoch", "step_in_epoch", "global_step",
               "config")


def _checked_state(state: dict[str, Any], path: Path) -> dict[str, Any]:
    missing = [k for k in _STATE_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"not a checkpoint of lowres-hps train (no {', '.join(missing)}): {path}")
    return state


def _changed_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        keys = list(old) + [k for k in new if k not in old]
        return [c for k in keys for c in _changed_keys(old.get(k), new.get(k), f"{prefix}{k}.")]
    return [] if old == new else [prefix.rstrip(".")]


def _set_determinism(enabled: bool) -> tuple[bool, bool, bool, bool]:
    previous = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
                torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    if enabled:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    return previous


def _restore_determinism(previous: tuple[bool, bool, bool, bool]) -> None:
    torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = previous[2], previous[3]
