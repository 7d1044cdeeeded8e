"""The configs of a training run (read with :func:`lowres_hps.core.config.load_config`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["OptimConfig", "TrainerConfig", "TrainConfig"]


@dataclass
class OptimConfig:
    """Optimizer and learning-rate schedule. The schedule is applied per optimizer step."""

    name: Literal["adam", "adamw", "sgd"] = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)  # adam/adamw
    momentum: float = 0.9  # sgd
    nesterov: bool = False  # sgd
    schedule: Literal["constant", "cosine", "step"] = "constant"
    warmup_steps: int = 0  # linear warm-up from warmup_start_factor * lr to lr
    warmup_start_factor: float = 0.001
    min_lr_factor: float = 0.0  # cosine: final lr = min_lr_factor * lr
    milestones: tuple[int, ...] = ()  # step: epochs at which lr is multiplied by gamma
    gamma: float = 0.1  # step
    # Per-parameter learning-rate factors by name prefix (mmengine's paramwise ``custom_keys``), e.g.
    # {features: 0.1} trains a pretrained trunk ten times slower than fresh heads; the longest prefix wins.
    lr_mult: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check(all(v >= 0 for v in self.lr_mult.values()), "optim.lr_mult factors must be >= 0", self.lr_mult)
        _check(self.lr > 0, "optim.lr must be > 0", self.lr)
        _check(self.weight_decay >= 0, "optim.weight_decay must be >= 0", self.weight_decay)
        _check(self.warmup_steps >= 0, "optim.warmup_steps must be >= 0", self.warmup_steps)
        _check(0 < self.warmup_start_factor <= 1, "optim.warmup_start_factor must be in (0, 1]",
               self.warmup_start_factor)
        _check(0 <= self.min_lr_factor <= 1, "optim.min_lr_factor must be in [0, 1]", self.min_lr_factor)
        _check(list(self.milestones) == sorted(self.milestones), "optim.milestones must be increasing", self.milestones)


@dataclass
class TrainerConfig:
    """What the shared training loop needs; the model and data come from the task."""

    out_dir: str = "runs/default"  # run folder: config.yaml, metrics.csv, last.pt, model.safetensors
    epochs: int = 1
    batch_size: int = 32  # GLOBAL batch size, split evenly over the processes
    num_workers: int = 0
    seed: int = 0
    deterministic: bool = False  # torch.use_deterministic_algorithms (slower on GPU)
    shuffle: bool = True
    drop_last: bool = True
    optim: OptimConfig = field(default_factory=OptimConfig)
    amp: bool = False  # autocast: bfloat16 on CPU, float16 (+ GradScaler) on CUDA
    channels_last: bool = False  # NHWC weights: ~2x faster MobileNet steps on AVX-512 CPUs (benchmarks/)
    grad_clip: float | None = None  # max global gradient norm
    log_every: int = 10  # steps between metrics.csv rows
    ckpt_every_steps: int = 0  # 0: a checkpoint at the end of each epoch only
    val_every_epochs: int = 1  # 0: no validation
    progress_bar: bool = True  # shown only on rank 0 and when stderr is a terminal
    device: Literal["auto", "cpu", "cuda"] = "auto"
    find_unused_parameters: bool = False  # DistributedDataParallel option
    # A validation metric (a key of task.evaluate's result): the weights of the epoch where it was best so far are
    # written to best.safetensors (kept over resumes); null: none.
    keep_best: str | None = None
    keep_best_mode: Literal["max", "min"] = "max"

    def __post_init__(self) -> None:
        _check(self.epochs >= 0, "trainer.epochs must be >= 0", self.epochs)
        _check(self.batch_size > 0, "trainer.batch_size must be > 0", self.batch_size)
        _check(self.num_workers >= 0, "trainer.num_workers must be >= 0", self.num_workers)
        _check(self.log_every > 0, "trainer.log_every must be > 0", self.log_every)
        _check(self.ckpt_every_steps >= 0, "trainer.ckpt_every_steps must be >= 0", self.ckpt_every_steps)
        _check(self.val_every_epochs >= 0, "trainer.val_every_epochs must be >= 0", self.val_every_epochs)
        _check(self.grad_clip is None or self.grad_clip > 0, "trainer.grad_clip must be > 0 or null", self.grad_clip)
        _check(self.keep_best_mode in ("max", "min"), "trainer.keep_best_mode must be 'max' or 'min'",
               self.keep_best_mode)
        _check(self.keep_best is None or self.val_every_epochs > 0, "trainer.keep_best needs validation "
               "(val_every_epochs > 0)", self.val_every_epochs)


@dataclass
class TrainConfig:
    """A training run: which task to build (``"package.module:function"`` and its keyword
    arguments) and how to train it."""

    task: str
    task_args: dict[str, Any] = field(default_factory=dict)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def __post_init__(self) -> None:
        _check(":" in self.task, "task must be 'package.module:function' (or 'path/file.py:function')", self.task)


def _check(ok: bool, message: str, value: Any) -> None:
    if not ok:
        raise ValueError(f"{message}, got {value!r}")
