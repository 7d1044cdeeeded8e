"""Training-step throughput of 2D pose networks on this CPU: fp32, channels_last, bf16 autocast, both.

    python benchmarks/bench_train_step.py [--configs configs/kp2d/lrmove_l_128.yaml ...] [--batch 64] [--threads 2]

One step = forward, CAL-style loss on the outputs, backward, Adam step, on random uint8 crops of the config's
input size (data loading excluded: the in-memory crop cache keeps it off the critical path). Median samples/s
over 5 steps after 2 warm-up steps. Prints one markdown row per config and setting.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import yaml


def step_rate(cfg, channels_last: bool, bf16: bool, batch: int, steps: int = 5, warmup: int = 2) -> float:
    from lowres_hps.core.config import load_config
    from lowres_hps.models.pose2d import Pose2DConfig, build_pose_model

    model_cfg = load_config(cfg["task_args"]["model"], Pose2DConfig)
    model = build_pose_model(model_cfg, pretrained=False).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    images = torch.randint(0, 256, (batch, 3, *model_cfg.input_size), dtype=torch.uint8)
    times = []
    for index in range(warmup + steps):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(images)
            loss = out["heatmaps"].float().square().mean() + out["offsets"].float().abs().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if index >= warmup:
            times.append(time.perf_counter() - start)
    return batch / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", nargs="+", default=["configs/kp2d/lrmove_l_128.yaml",
                                                          "configs/kp2d/lrmove_l_128x96.yaml"])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print("| config | input | fp32 | fp32 + channels_last | bf16 autocast | bf16 + channels_last |")
    print("|---|---|---|---|---|---|")
    for path in args.configs:
        cfg = yaml.safe_load(open(path))
        size = "x".join(str(v) for v in cfg["task_args"]["model"]["input_size"])
        rates = [step_rate(cfg, cl, bf, args.batch) for bf in (False, True) for cl in (False, True)]
        print(f"| {path} | {size} | " + " | ".join(f"{r:.0f}" for r in (rates[0], rates[1], rates[2], rates[3])) + " |",
              flush=True)


if __name__ == "__main__":
    main()
