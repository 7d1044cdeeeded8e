"""Training-step throughput of 2D and 3D networks on this CPU: fp32, channels_last, bf16 autocast, both.

    python benchmarks/bench_train_step.py [--configs configs/kp2d/lrmove_l_128.yaml ...] [--batch 64] [--threads 2]

2D (kp2d) configs: one step = forward, CAL-style loss on the outputs, backward, Adam step, on random uint8 crops
of the config's input size (data loading excluded: the in-memory crop cache keeps it off the critical path).
3D (RSC-Net) configs: forward of ``--batch`` crops, the body model (keypoints only, float32), a 3D + 2D
keypoint loss through the crop camera, backward, Adam step; ``--batch`` counts crops (people x resolutions).
Median crops/s over 5 steps after 2 warm-up steps. Prints one markdown row per config and setting.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import yaml


def _body3d_step(cfg, batch: int):
    """``(model, input size, loss(model, images))`` of a 3D config: network, keypoint-only body, 3D + 2D loss."""
    from lowres_hps.body import load_body_model
    from lowres_hps.core.config import load_config
    from lowres_hps.models.body3d import Body3DConfig, build_body3d_model, project_to_crop

    model_cfg = load_config(cfg["task_args"]["model"], Body3DConfig)
    model = build_body3d_model(model_cfg, pretrained=False).train()
    body = load_body_model(model_cfg.body_model)
    ranges = torch.arange(batch) % model_cfg.num_ranges
    target3d = torch.randn(batch, 17, 3) * 0.3
    target2d = torch.rand(batch, 17, 2) * model_cfg.canvas

    def loss(net, images):
        out = net(images, ranges)
        with torch.autocast("cpu", enabled=False):
            keypoints, _ = body.forward_vector(out["pose_vector"].float(), keypoints_only=True).keypoints("coco17")
            pixels, _ = project_to_crop(keypoints, out["camera"].float(), model_cfg.canvas, model_cfg.crop_focal)
            return (keypoints - target3d).square().mean() + ((pixels - target2d) / model_cfg.canvas).square().mean()

    return model, model_cfg.input_size, loss


def _pose2d_step(cfg):
    from lowres_hps.core.config import load_config
    from lowres_hps.models.pose2d import Pose2DConfig, build_pose_model

    model_cfg = load_config(cfg["task_args"]["model"], Pose2DConfig)
    model = build_pose_model(model_cfg, pretrained=False).train()

    def loss(net, images):
        out = net(images)
        return out["heatmaps"].float().square().mean() + out["offsets"].float().abs().mean()

    return model, model_cfg.input_size, loss


def step_rate(cfg, channels_last: bool, bf16: bool, batch: int, steps: int = 5, warmup: int = 2) -> float:
    is_3d = cfg["task"].endswith(":rsc_task")
    model, input_size, loss_fn = _body3d_step(cfg, batch) if is_3d else _pose2d_step(cfg)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    images = torch.randint(0, 256, (batch, 3, *input_size), dtype=torch.uint8)
    times = []
    for index in range(warmup + steps):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = loss_fn(model, images)
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
        model = cfg["task_args"]["model"]
        size = "x".join(str(v) for v in model.get("input_size", [model.get("canvas")] * 2))
        rates = [step_rate(cfg, cl, bf, args.batch) for bf in (False, True) for cl in (False, True)]
        print(f"| {path} | {size} | " + " | ".join(f"{r:.0f}" for r in (rates[0], rates[1], rates[2], rates[3])) + " |",
              flush=True)


if __name__ == "__main__":
    main()
