"""The loops all methods share: training configs, a Task protocol, a Trainer with data parallelism
(torchrun), AMP, CSV/TensorBoard logs and exactly resumable checkpoints; and an Adapter that updates a copy
of a trained model from unlabelled inputs (test-time adaptation and fitting)."""
from lowres_hps.engine.adapter import AdaptConfig, Adapter, norm_parameters
from lowres_hps.engine.checkpoint import (
    atomic_write,
    capture_rng_state,
    load_checkpoint,
    load_weights,
    restore_rng_state,
    save_checkpoint,
    save_weights,
)
from lowres_hps.core.config import dump_config, load_config, parse_override, save_config  # the training API uses them
from lowres_hps.engine.config import OptimConfig, TrainConfig, TrainerConfig
from lowres_hps.engine.distributed import (
    DistributedContext,
    ResumableDistributedSampler,
    destroy_distributed,
    init_distributed,
)
from lowres_hps.engine.logging import MetricLogger
from lowres_hps.engine.trainer import (
    LRSchedule,
    SampleSeededDataset,
    Task,
    Trainer,
    base_lr,
    batch_to_device,
    build_optimizer,
    build_scheduler,
    build_task,
    import_object,
    seed_everything,
    seed_worker,
)

__all__ = [
    "OptimConfig", "TrainerConfig", "TrainConfig", "load_config", "dump_config", "save_config", "parse_override",
    "Task", "Trainer", "build_task", "import_object", "seed_everything", "seed_worker", "batch_to_device",
    "build_optimizer", "base_lr", "build_scheduler", "LRSchedule", "SampleSeededDataset",
    "DistributedContext", "init_distributed", "destroy_distributed", "ResumableDistributedSampler",
    "MetricLogger",
    "atomic_write", "save_checkpoint", "load_checkpoint", "capture_rng_state", "restore_rng_state",
    "save_weights", "load_weights",
    "Adapter", "AdaptConfig", "norm_parameters",
]
