"""Silhouette-topology self-adaptation on a shifted synthetic target with ground truth (issue 13).

The source is a shipped 3D model (trained on ordinary SynthLR renders and real 2D). The target is SynthLR seen
through a domain shift (:mod:`lowres_hps.imaging.domain_shift`: ``thermal``, ``grayscale``, ``night``; ``none``
is the paper's R -> LR setting, low resolution alone) at the protocol's low resolutions (96, 52, 32 px). Each
variant adapts a copy of the source on unlabelled target people with their silhouettes (the renderer's masks),
at the same number of steps, and is scored by MPJPE / PA-MPJPE on other target people.

Splits (SynthLR-test, seed 2000, is never trained on with labels):
* adaptation data: test crops 1000-1999, labels unused (images and silhouettes only);
* ``--eval val``: SynthLR-val crops (to choose settings); ``--eval test``: test crops 0-299 (reported once).

    python benchmarks/sta_synthetic.py --shift thermal --variants pre b1 b2 b3 ours_nofit ours --seeds 0 1
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import torch

VARIANTS = {  # name -> (SilhouetteAdaptConfig overrides); "pre" is the source model unadapted
    # Control: every weight 0, so only normalisation statistics could follow the target (the trainer runs the copy in
    # training mode). It scores exactly as "pre" on MoveNet trunks, whose BatchNorm is folded into the convolutions.
    "stats_only": {"losses": "ours", "fit_every": 0, "lambda_silhouette": 0.0, "lambda_topology": 0.0,
                   "lambda_shape": 0.0, "lambda_prior": 0.0},
    "b1": {"losses": "b1", "fit_every": 0},
    "b2": {"losses": "b2", "fit_every": 0},
    "b3": {"losses": "b3", "fit_every": 0},
    "ours_nofit": {"losses": "ours", "fit_every": 0},
    "ours": {"losses": "ours", "fit_every": 4},
    "inside": {"losses": "inside", "fit_every": 0},
}
HEIGHTS = (96.0, 52.0, 32.0)
ADAPT_PEOPLE = range(1000, 2000)
TEST_PEOPLE = range(0, 300)


def _shift(kind: str):
    from lowres_hps.imaging.domain_shift import apply_domain_shift

    if kind == "none":
        return None
    return lambda image, mask, rng: apply_domain_shift(image, kind, rng, mask=mask)


def adaptation_set(folder: str, kind: str, seed: int, people: range, canvas: int):
    """Target people at each low resolution, one resolution per item, with their silhouettes."""
    from torch.utils.data import ConcatDataset, Subset

    from lowres_hps.data import SynthLRReader
    from lowres_hps.data.multires_dataset import MultiResolutionDataset

    reader = SynthLRReader(folder, load_masks=True)
    parts = []
    for h in HEIGHTS:
        dataset = MultiResolutionDataset([reader], canvas=canvas, person_heights=[h], image_transform=_shift(kind),
                                         transform_seed=seed, with_masks=True)
        parts.append(Subset(dataset, [i for i in people if i < len(dataset)]))
    return ConcatDataset(parts)


def evaluation_set(folder: str, kind: str, people: range | None, canvas: int):
    from torch.utils.data import Subset

    from lowres_hps.data import SynthLRReader
    from lowres_hps.data.multires_dataset import MultiResolutionDataset

    reader = SynthLRReader(folder, load_masks=True)
    # A fixed seed apart from the adaptation seeds: every variant is scored on the same shifted images.
    dataset = MultiResolutionDataset([reader], canvas=canvas, person_heights=list(HEIGHTS), image_transform=_shift(kind),
                                     transform_seed=12345)
    return Subset(dataset, list(people) if people is not None else range(len(dataset)))


def score(network, body, dataset, batch_size: int = 25) -> dict[str, float]:
    from torch.utils.data import DataLoader

    from lowres_hps.evaluation import evaluate_body3d

    network.eval()
    with torch.no_grad():
        return evaluate_body3d(network, body, DataLoader(dataset, batch_size=batch_size), list(HEIGHTS))


def table(paths: list[str]) -> str:
    """A markdown table of results files: per variant the mean over seeds (and the spread, max - min), with the
    change of PA-MPJPE from the unadapted source."""
    rows: dict[str, list[dict]] = {}
    for path in paths:
        for key, metrics in json.loads(Path(path).read_text())["rows"].items():
            rows.setdefault(key.split("/")[0], []).append(metrics)
    names = [f"{kind}_mm@{int(h)}" for kind in ("mpjpe", "pa_mpjpe") for h in HEIGHTS]
    pre = {n: sum(r[n] for r in rows["pre"]) / len(rows["pre"]) for n in names} if "pre" in rows else None
    lines = ["| variant | seeds | " + " | ".join(n.replace("_mm@", " ") for n in names) + " | PA 32 vs pre |",
             "|---|---|" + "---|" * len(names) + "---|"]
    for variant in ["pre", *VARIANTS]:
        if variant not in rows:
            continue
        cells = []
        for n in names:
            values = [r[n] for r in rows[variant]]
            mean = sum(values) / len(values)
            cells.append(f"{mean:.1f}" + (f" ± {(max(values) - min(values)) / 2:.1f}" if len(values) > 1 else ""))
        pa32 = sum(r["pa_mpjpe_mm@32"] for r in rows[variant]) / len(rows[variant])
        change = f"{100 * (pa32 / pre['pa_mpjpe_mm@32'] - 1):+.1f}%" if pre else "-"
        lines.append(f"| {variant} | {len(rows[variant])} | " + " | ".join(cells) + f" | {change} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model3d", default="rsc_move_c128_ft2")
    parser.add_argument("--shift", default="thermal", choices=["thermal", "grayscale", "night", "none"])
    parser.add_argument("--variants", nargs="+", default=["pre", "b1", "b2", "b3", "ours_nofit", "ours"],
                        choices=["pre", *VARIANTS])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--eval", choices=["val", "test"], default="val")
    parser.add_argument("--test-folder", default="data/synthlr/test_crops")
    parser.add_argument("--val-folder", default="data/synthlr/val_crops")
    parser.add_argument("--no-prior", dest="prior", action="store_false")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--trainable", choices=["all", "backbone"], default="all",
                        help="adapt every weight (the paper) or the image trunk only")
    parser.add_argument("--out", default=None, help="results json (default benchmarks/results/sta_<shift>_<eval>.json)")
    parser.add_argument("--table", nargs="+", default=None, metavar="RESULTS.json",
                        help="print the markdown table of results files (mean ± half the spread over seeds) and stop")
    args = parser.parse_args()
    if args.table:
        print(table(args.table))
        return
    torch.set_num_threads(args.threads)

    from lowres_hps.apis.adaptation import adapt_body3d
    from lowres_hps.apis.registry import load_model
    from lowres_hps.methods.sta import SilhouetteAdaptConfig

    out = Path(args.out or f"benchmarks/results/sta_{args.shift}_{args.eval}.json")
    results = json.loads(out.read_text()) if out.is_file() else {}
    results.setdefault("settings", {}).update({
        "model3d": args.model3d, "shift": args.shift, "steps": args.steps, "lr": args.lr,
        "batch_size": args.batch_size, "prior": args.prior, "trainable": args.trainable, "eval": args.eval, "heights": list(HEIGHTS),
        "adaptation_people": f"{args.test_folder}[{ADAPT_PEOPLE.start}:{ADAPT_PEOPLE.stop}] x {len(HEIGHTS)} heights"})
    source = load_model(args.model3d)
    canvas = source.model.config.canvas
    if args.eval == "test":
        evaluation = evaluation_set(args.test_folder, args.shift, TEST_PEOPLE, canvas)
    else:
        evaluation = evaluation_set(args.val_folder, args.shift, None, canvas)
    prior = None
    if args.prior:
        from lowres_hps.models.pose_prior import default_pose_prior

        prior = default_pose_prior()
    rows = results.setdefault("rows", {})
    for variant in args.variants:
        for seed in ([0] if variant == "pre" else args.seeds):
            key = f"{variant}/seed{seed}"
            started = time.perf_counter()
            if variant == "pre":
                metrics = score(source.model, source.body, evaluation)
            else:
                config = SilhouetteAdaptConfig(**VARIANTS[variant])
                data = adaptation_set(args.test_folder, args.shift, seed, ADAPT_PEOPLE, canvas)
                work = Path(tempfile.mkdtemp(prefix=f"sta_{variant}_"))
                try:
                    path, _ = adapt_body3d(source, data, work / "adapted.safetensors", work_dir=work / "run",
                                           config=config, prior=prior, steps=args.steps, batch_size=args.batch_size,
                                           lr=args.lr, seed=seed, resume=False, progress_bar=False,
                                           trainable=args.trainable)
                    adapted = load_model(path)
                    metrics = score(adapted.model, adapted.body, evaluation)
                finally:
                    shutil.rmtree(work, ignore_errors=True)
            metrics["seconds"] = round(time.perf_counter() - started, 1)
            rows[key] = metrics
            print(key, {k: round(v, 1) for k, v in metrics.items()}, flush=True)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
