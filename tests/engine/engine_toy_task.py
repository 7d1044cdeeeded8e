"""A tiny deterministic regression task and helpers for the engine tests (not collected by pytest).

Subprocesses import it as ``engine_toy_task:make_toy_task`` with ``tests/engine`` on PYTHONPATH
(see :func:`subprocess_env`).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from torch import nn
from torch.utils.data import Dataset

from lowres_hps.engine import Task, TrainConfig, Trainer, build_task, seed_everything


class ToyRegression(Dataset):
    """Fixed inputs x (N, F) and targets y = sin(x) @ w (N, 1); ``noise`` adds random jitter to x
    drawn from the global torch RNG, the way a random augmentation would."""

    def __init__(self, num_samples: int, in_features: int, noise: float, data_seed: int) -> None:
        generator = torch.Generator().manual_seed(data_seed)
        self.x = torch.randn(num_samples, in_features, generator=generator)
        weights = torch.randn(in_features, 1, generator=generator)
        self.y = torch.sin(self.x) @ weights
        self.noise = noise

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        x = self.x[index]
        if self.noise:
            x = x + self.noise * torch.randn_like(x)
        return {"x": x, "y": self.y[index], "index": torch.tensor(index)}


def make_toy_task(
    num_samples: int = 48,
    in_features: int = 4,
    hidden: int = 16,
    dropout: float = 0.0,
    noise: float = 0.0,
    data_seed: int = 0,
    init_seed: int = 0,
    with_val: bool = True,
    exit_after_loss_calls: int | None = None,
) -> Task:
    """An MLP regressing ``ToyRegression``; ``exit_after_loss_calls`` kills the process
    (``os._exit``, no cleanup) at that call of the loss, to simulate a crash."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        model = nn.Sequential(nn.Linear(in_features, hidden), nn.Tanh(), nn.Dropout(dropout), nn.Linear(hidden, 1))
    calls = 0

    def loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        nonlocal calls
        calls += 1
        if exit_after_loss_calls is not None and calls >= exit_after_loss_calls:
            os._exit(17)
        error = model(batch["x"]) - batch["y"]
        return error.square().mean(), {"mae": error.detach().abs().mean()}

    def evaluate(model: nn.Module, batches) -> dict[str, float]:
        total, count = 0.0, 0
        for batch in batches:
            total += (model(batch["x"]) - batch["y"]).square().sum().item()
            count += len(batch["x"])
        return {"mse": total / count}

    val = ToyRegression(16, in_features, 0.0, data_seed + 1) if with_val else None
    return Task(
        model=model,
        train_dataset=ToyRegression(num_samples, in_features, noise, data_seed),
        loss=loss,
        val_dataset=val,
        evaluate=evaluate if with_val else None,
    )


# ---------------------------------------------------------------------------------------------
# Helpers shared by the engine tests

REPO_ROOT = Path(__file__).resolve().parents[2]
TOY_TASK = "engine_toy_task:make_toy_task"


def toy_config_dict(out_dir: str | Path, task_args: dict | None = None, **trainer: Any) -> dict:
    """A TrainConfig dict for the toy task: 48 samples, global batch 8 -> 6 steps per epoch."""
    defaults = {"out_dir": str(out_dir), "epochs": 2, "batch_size": 8, "log_every": 2, "seed": 3,
                "device": "cpu", "progress_bar": False, "optim": {"name": "adam", "lr": 0.01}}
    return {"task": TOY_TASK, "task_args": dict(task_args or {}), "trainer": {**defaults, **trainer}}


def train_in_process(cfg: TrainConfig, resume: bool = False) -> Trainer:
    """What ``lowres-hps train`` does, in this process: seed, build the task, fit."""
    seed_everything(cfg.trainer.seed)
    trainer = Trainer(cfg, build_task(cfg.task, cfg.task_args))
    trainer.fit(resume=resume)
    return trainer


def subprocess_env() -> dict[str, str]:
    """Environment for CLI subprocesses: the package and this folder importable, one thread."""
    env = dict(os.environ)
    paths = [str(REPO_ROOT / "src"), str(Path(__file__).parent), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    env["OMP_NUM_THREADS"] = "1"
    return env


def run_cli(args: list[str], nproc: int = 1, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m lowres_hps.cli ARGS``, or under ``torchrun --nproc_per_node=nproc``."""
    launcher = [sys.executable]
    if nproc > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    return subprocess.run([*launcher, "-m", "lowres_hps.cli", "train", *args], env=subprocess_env(),
                          capture_output=True, text=True, timeout=timeout)


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    return safetensors.torch.load_file(str(path))
