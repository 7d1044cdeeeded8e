"""``lowres-hps train CONFIG.yaml [--out DIR] [--resume] [key=value ...]``."""
from __future__ import annotations

import argparse
import dataclasses
import logging

from lowres_hps.core.config import load_config
from lowres_hps.engine.config import TrainConfig
from lowres_hps.engine.distributed import destroy_distributed, init_distributed
from lowres_hps.engine.trainer import Trainer, build_task, seed_everything

__all__ = ["main"]


def main(args: argparse.Namespace) -> int:
    """Load the config (+ overrides), build the task and train; works under ``torchrun``."""
    cfg = load_config(args.config, TrainConfig, list(args.overrides or []))
    if args.out is not None:
        cfg = dataclasses.replace(cfg, trainer=dataclasses.replace(cfg.trainer, out_dir=args.out))
    context = init_distributed(cfg.trainer.device)
    try:
        if context.is_main:
            logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
        # Same seed on every process: the task (model init, synthetic data) must be identical.
        seed_everything(cfg.trainer.seed)
        task = build_task(cfg.task, cfg.task_args)
        Trainer(cfg, task).fit(resume=args.resume)
    finally:
        destroy_distributed()
    return 0
