"""RSC-Net ablations (the paper's Tables 3-4), each row trained with the same budget, then scored.

    python benchmarks/rsc_ablations.py [--base CONFIG] [--canvas 64] [--epochs 4] [--subset 1000]
        [--seeds 0 1] [--rows NAME ...]

Every row trains ``--base`` (default `configs/hps3d/rsc_r18_c128.yaml`) with its overrides, on the same fixed
random ``--subset`` of training people for ``--epochs`` epochs (progressive rows add one resolution range per
epoch: ranges 0-1 in epoch 0, range 2 in epoch 1, ...), at the ``--canvas`` input size, with the trunk
initialised from the base config's 2D model, or for ResNet bases the shipped 2D model of matching person size
(``TRUNK_INIT``), once per ``--seeds`` value (data order, augmentation and the regressor's initialisation),
into runs/hps3d_ablation[_BASE]_c<canvas><tag>/NAME[_sSEED] (skipped when already trained). Then, with
ground-truth boxes, it
measures MPJPE and PA-MPJPE (mm, COCO-17, hips-rooted) on the first ``--test-people`` SynthLR-test
crops degraded to person heights 176, 96, 52 and 32 px (the midpoints of the paper's ranges).
Results go to benchmarks/results/rsc_ablations[_BASE]_c<canvas><tag>.json and a markdown table on stdout
(with several seeds: the mean of each cell, and the spread between seeds at 32 px).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("ANNY_CACHE_DIR", str(ROOT / ".cache" / "anny"))
BASE = "configs/hps3d/rsc_r18_c128.yaml"
SYNTH_TEST = ROOT / "data/synthlr/test_crops"
HEIGHTS = (176, 96, 52, 32)
# Every row starts its trunk from the shipped 2D model whose person size matches the canvas (the paper
# starts every row from SPIN): 64 px canvas -> people 51 px tall, as in 64x48 inputs.
TRUNK_INIT = {64: "cal_r18_64x48", 128: "cal_r18_128x96"}

# name -> (overrides of the base config, description); the base is the full model RA+SS+CL with PT.
_NO_SS = "task_args.self_supervision=null"
_NO_FEAT = "task_args.feature_loss=null"
_BA = "task_args.model.resolution_aware=false"
_CL = "task_args.feature_loss=contrastive"  # explicit: a base may have its feature loss off
ROWS: dict[str, tuple[list[str], str]] = {
    "ba": ([_BA, _NO_SS, _NO_FEAT], "Ba: plain network (no alpha), basic loss"),
    "ba_ss": ([_BA, _NO_FEAT], "Ba+SS"),
    "ra": ([_NO_SS, _NO_FEAT], "RA: resolution-aware, basic loss"),
    "ra_ss": ([_NO_FEAT], "RA+SS"),
    "ra_ss_ms": (["task_args.feature_loss=mse"], "RA+SS+MS (MSE feature loss)"),
    "ra_ss_cd": (["task_args.feature_loss=cosine"], "RA+SS+CD (cosine distance feature loss)"),
    "ra_ss_cl": ([_CL], "RA+SS+CL (full model)"),
    "no_pt": ([_CL, "task_args.range_schedule=null"], "full model w/o PT (all ranges from the start)"),
    "ss_o": ([_CL, "task_args.self_supervision=symmetric"], "full model w/ SS-o (Eq. 8, symmetric)"),
    "ss_h": ([_CL, "task_args.self_supervision=highest"], "full model w/ SS-h (highest resolution teaches)"),
}


def base_tag(base: str) -> str:
    """'' for the original base, else '_<config stem>' (runs and results of other bases stay apart)."""
    return "" if base == BASE else f"_{Path(base).stem}"


def run_dir(name: str, canvas: int, tag: str = "", base: str = BASE, seed: int | None = None) -> Path:
    suffix = "" if seed is None else f"_s{seed}"
    return ROOT / "runs" / f"hps3d_ablation{base_tag(base)}_c{canvas}{tag}" / f"{name}{suffix}"


def trunk_init(base: str, canvas: int) -> str:
    """The 2D model the trunk starts from: the base config's own for MoveNet bases, else by person size."""
    import yaml

    config = yaml.safe_load((ROOT / base).read_text())
    if config["task_args"]["model"].get("backbone", "resnet18").startswith("movenet"):
        return config["task_args"]["init_trunk_from"]
    return TRUNK_INIT.get(canvas, "cal_r18_128x96")


def train(name: str, canvas: int, epochs: int, subset: int, tag: str = "", base: str = BASE,
          seed: int | None = None) -> Path:
    out = run_dir(name, canvas, tag, base, seed)
    if (out / "model.safetensors").exists():
        return out
    overrides, _ = ROWS[name]
    schedule = [0, 0] + [min(i, epochs - 1) for i in range(1, 4)]
    budget = [f"task_args.model.canvas={canvas}", f"trainer.epochs={epochs}", f"task_args.train_subset={subset}",
              f"task_args.init_trunk_from={trunk_init(base, canvas)}",
              "trainer.val_every_epochs=0", "trainer.ckpt_every_steps=50", "trainer.optim.warmup_steps=20"]
    if seed is not None:
        budget.append(f"trainer.seed={seed}")
    if not any(o.startswith("task_args.range_schedule") for o in overrides):
        budget.append(f"task_args.range_schedule=[{', '.join(map(str, schedule))}]")
    command = [sys.executable, "-m", "lowres_hps.cli", "train", base, "--out", str(out), *overrides, *budget]
    if (out / "last.pt").exists():
        command.append("--resume")
    subprocess.run(command, check=True, cwd=ROOT)
    return out


def score(run: Path, test_people: int, batch_size: int = 16, flip_test: bool = False) -> dict[str, float]:
    """MPJPE / PA-MPJPE at every evaluation height of one trained run (``flip_test``: with the 3D flip test)."""
    from lowres_hps.apis.registry import load_run

    return score_estimator(load_run(run), SYNTH_TEST, test_people, batch_size, flip_test)


def score_estimator(estimator, folder: Path, people: int, batch_size: int = 16,
                    flip_test: bool = False) -> dict[str, float]:
    """MPJPE / PA-MPJPE of a 3D estimator's network on the first ``people`` crops of a SynthLR crops folder at
    every evaluation height (``flip_test``: through :class:`~lowres_hps.models.body3d.FlipTestNet`)."""
    import torch
    from torch.utils.data import DataLoader, Subset

    from lowres_hps.data import SynthLRReader
    from lowres_hps.data.multires_dataset import MultiResolutionDataset
    from lowres_hps.methods.rsc import evaluate_body3d
    from lowres_hps.models.body3d import FlipTestNet

    cfg = estimator.config
    dataset = MultiResolutionDataset([SynthLRReader(folder)], canvas=cfg.canvas, convention=cfg.convention,
                                     body_model=cfg.body_model, pose_size=cfg.pose_spec.vector_size,
                                     num_ranges=cfg.num_ranges, person_heights=HEIGHTS, scale_factor=cfg.scale_factor)
    subset = Subset(dataset, range(min(people, len(dataset))))
    network = estimator.model.float()
    network = FlipTestNet(network) if flip_test else network
    with torch.no_grad():
        return evaluate_body3d(network, estimator.body, DataLoader(subset, batch_size=batch_size), list(HEIGHTS))


def score_constant(test_people: int) -> dict[str, float]:
    """The reference a trained row must beat: one constant body for everyone, the regressor's start
    (training mean of the body joints and shape, upright and facing the camera). Resolution-free."""
    import torch

    from lowres_hps.body import load_body_model
    from lowres_hps.data import SynthLRReader
    from lowres_hps.evaluation.keypoints3d import mpjpe, pa_mpjpe
    from lowres_hps.methods.rsc import hips_root, mean_pose_vector
    from lowres_hps.models.body3d import Body3DConfig, default_mean_params

    cfg = Body3DConfig()
    start = default_mean_params(cfg)[:-3]
    start[6:] = mean_pose_vector([SynthLRReader(ROOT / "data/synthlr/train")], cfg.pose_spec)[6:]
    reader = SynthLRReader(SYNTH_TEST)
    people = range(min(test_people, len(reader)))
    gt = torch.stack([torch.as_tensor(reader[i].keypoints3d[:, :3]) for i in people]).double()
    visible = torch.stack([torch.as_tensor(reader[i].keypoints3d[:, 3] > 0) for i in people])
    keypoints, _ = load_body_model(cfg.body_model).forward_vector(start[None]).keypoints(cfg.convention)
    pred = keypoints.double().expand(len(gt), -1, -1)
    error = float(1000 * mpjpe(pred - hips_root(pred), gt - hips_root(gt), visible).mean())
    pa_error = float(1000 * pa_mpjpe(pred, gt, visible).mean())
    return {f"{name}@{h}": value for h in HEIGHTS for name, value in (("mpjpe_mm", error), ("pa_mpjpe_mm", pa_error))}


def table(results: dict, names: list[str]) -> str:
    """Markdown rows; a row of several seeds (``{"seeds": {seed: metrics}}``) shows the mean of each cell and
    the spread (max - min) between its seeds at 32 px."""
    head = " | ".join(f"MPJPE {h}" for h in HEIGHTS) + " | " + " | ".join(f"PA {h}" for h in HEIGHTS)
    lines = [f"| row | {head} | spread MPJPE / PA at 32 |", "|---" * (2 + 2 * len(HEIGHTS)) + "|"]
    for name in names:
        r = results[name]
        runs = list(r["seeds"].values()) if "seeds" in r else [r]
        mean = lambda key: sum(run[key] for run in runs) / len(runs)  # noqa: E731
        spread = lambda key: max(run[key] for run in runs) - min(run[key] for run in runs)  # noqa: E731
        cells = [f"{mean(f'mpjpe_mm@{h}'):.1f}" for h in HEIGHTS] + [f"{mean(f'pa_mpjpe_mm@{h}'):.1f}" for h in HEIGHTS]
        spreads = (f"{spread('mpjpe_mm@32'):.1f} / {spread('pa_mpjpe_mm@32'):.1f}" if len(runs) > 1 else "-")
        lines.append(f"| {r['description']} | " + " | ".join(cells) + f" | {spreads} |")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--canvas", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--subset", type=int, default=1000)
    parser.add_argument("--test-people", type=int, default=300)
    parser.add_argument("--rows", nargs="*", default=list(ROWS))
    parser.add_argument("--tag", default="", help="suffix of the run folder and results file (another budget)")
    parser.add_argument("--base", default=BASE, help="config every row starts from")
    parser.add_argument("--seeds", type=int, nargs="*", default=None,
                        help="train every row once per seed (default: one run with the config's seed)")
    parser.add_argument("--reference", action="store_true", help="only score the constant-body reference")
    args = parser.parse_args()
    if args.reference:
        print(json.dumps(score_constant(args.test_people)))
        sys.exit(0)
    results_path = (ROOT / "benchmarks" / "results" /
                    f"rsc_ablations{base_tag(args.base)}_c{args.canvas}{args.tag}.json")
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    for seed in (args.seeds or [None]):
        for name in args.rows:
            start = time.perf_counter()
            run = train(name, args.canvas, args.epochs, args.subset, args.tag, args.base, seed)
            trained = time.perf_counter()
            metrics = score(run, args.test_people)
            metrics.update(description=ROWS[name][1], canvas=args.canvas, epochs=args.epochs, subset=args.subset,
                           test_people=args.test_people, train_minutes=round((trained - start) / 60, 1),
                           base=args.base)
            if seed is None:
                results[name] = metrics
            else:
                row = results.setdefault(name, {"description": ROWS[name][1], "seeds": {}})
                row["seeds"][str(seed)] = metrics
            results_path.write_text(json.dumps(results, indent=2))
            print(name, seed, metrics, flush=True)
    print()
    print(table(results, [n for n in args.rows if n in results]))
