"""SSPSE (issue 14): self-supervised fine-tuning of a 3D model on unlabelled real people, and its ablations.

    python scripts/make_unlabelled_sets.py                       # the unlabelled people (BlazePose masks)
    python benchmarks/sspse_ablations.py teacher                 # their 2D keypoints from MoveNet Thunder (teacher)
    python benchmarks/sspse_ablations.py pretrain [--start M] [--steps 400]  # T1 once per start, shared by its variants
    python benchmarks/sspse_ablations.py train VARIANT [--start M] --seed S [--steps 150] [--lr 5e-6] [--tag _abl]
        [--set K=V ...]
    python benchmarks/sspse_ablations.py evaluate VARIANT --seed S [--tag _abl] [--no-fit] [--validation]
    python benchmarks/sspse_ablations.py evaluate start --start M --tag _abl [--validation]
    python benchmarks/sspse_ablations.py table [--tag _abl]

Starts (``--start``): predict's 3D default ``rsc_move_c128_eft`` (tag ``_eft``), ``rsc_move_c128_ft3`` (the first
ablations, tag ``_abl``), and the training run ``runs/hps3d/rsc_move_c128_synth``
(``configs/hps3d/rsc_move_c128_synth.yaml``: the same network trained on SynthLR alone, the paper's setting of a start
that never saw a real person's body labels; tag ``_synth``).

Unlabelled real people (keypoints removed; ``scripts/make_unlabelled_sets.py``): lspet_400[0:270] (217 with a
BlazePose mask), two thirds of coco_mini_train's keypoint images (32) and vtest.avi frames 1-400 (345): the 3D
default's own real training images, here without their labels, 594 people. Masks: BlazePose GHUM's person
segmentation (the paper's Mask R-CNN stand-in). ``teacher`` gives the same people MoveNet Thunder's keypoints at the
images' own resolution (Lightning's second opinion, as ``lowres-hps label``; ground truth discarded) for the
variants with a 2D teacher term (not in the paper). Held out: COCO-holdout and LSPET-test (projected-3D AP),
SynthLR-test (MPJPE / PA-MPJPE), none of which any run saw; choices are made with ``--validation`` (LSPET-val,
SynthLR-val).

Variants (``VARIANTS``): Table 5's rows (``full``, ``no_real`` = -L_real, ``no_real_mask`` = -L_real -L_mask,
``weak`` = 2D joints of SynthLR-train people, ``semi`` = their 3D joints) and Table 9's (``jigsaw``, ``rotation``,
``inpainting``: one pretext task, rendering as in ``full``); ``render_only`` and ``pretext_only`` were validation
probes; ``teacher`` (the 2D teacher term alone), ``full_teacher``, ``pretext_teacher`` and ``semi_teacher`` add the
teacher; ``semi_teacher_only`` is the teacher and SynthLR's 3D without any of SSPSE's own terms (the control). Every
variant of a start runs the same number of steps of the same batch from the same T1 (``runs/sspse/t1*``).
``--set lambda_mask=10 ...`` overrides SSPSEConfig fields. Results: ``benchmarks/results/sspse/*.json``
(``*_val.json``: the validation people).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("ANNY_CACHE_DIR", str(ROOT / ".cache" / "anny"))

START = "rsc_move_c128_eft"  # predict's 3D default; the first ablations (tag _abl) ran from rsc_move_c128_ft3
FOLDERS = [ROOT / "data/labels/lspet_train", ROOT / "data/labels/coco_train", ROOT / "data/labels/vtest_1_400"]
UNLABELLED = [folder / "unlabelled.json" for folder in FOLDERS]
TEACHER = [folder / "unlabelled_teacher.json" for folder in FOLDERS]  # the same people with a 2D teacher's keypoints
BACKGROUNDS = ROOT.parent / "shared/data/backgrounds"
RUNS = ROOT / "runs/sspse"
RESULTS = ROOT / "benchmarks/results/sspse"
ALL = ("jigsaw", "rotation", "inpainting")
VARIANTS = {
    "full": dict(),
    "no_real": dict(rendering=("rgb", "mask")),
    "no_real_mask": dict(rendering=("rgb",)),
    "weak": dict(supervision="weak"),
    "semi": dict(supervision="semi"),
    "jigsaw": dict(pretext=("jigsaw",)),
    "rotation": dict(pretext=("rotation",)),
    "inpainting": dict(pretext=("inpainting",)),
    "render_only": dict(pretext=()),
    "pretext_only": dict(rendering=()),
    # Not in the paper: a high-resolution 2D teacher's keypoints on the unlabelled people (pseudo-labels).
    "teacher": dict(pretext=(), rendering=(), lambda_teacher=1.0),
    "full_teacher": dict(lambda_teacher=1.0),
    "pretext_teacher": dict(rendering=(), lambda_teacher=1.0),
    "semi_teacher": dict(supervision="semi", lambda_teacher=1.0),
    "semi_teacher_only": dict(pretext=(), rendering=(), supervision="semi", lambda_teacher=1.0),
}


def _t1(start: str) -> Path:
    return RUNS / ("t1" if start == "rsc_move_c128_ft3" else f"t1_{Path(start).stem}")


def _load_start(start: str):
    """A registered model or checkpoint, or a training run folder (given a card named after it)."""
    from lowres_hps.apis.registry import ModelCard, load_model, load_run

    if not Path(start).is_dir():
        return load_model(start)
    estimator = load_run(start)
    estimator.card = ModelCard.from_config(Path(start).name, estimator.model.config,
                                           training_data=[f"the training run {start}"])
    return estimator


def _setup(threads: int, start: str, teacher: bool = False):
    torch.set_num_threads(threads)
    from lowres_hps.apis.selfsup import load_backgrounds, unlabelled_dataset

    estimator = _load_start(start)
    net = estimator.model.config
    files = TEACHER if teacher else UNLABELLED
    missing = [str(p) for p in files if not p.is_file()]
    if missing:
        raise SystemExit(f"missing {missing}: run scripts/make_unlabelled_sets.py"
                         + (" and `python benchmarks/sspse_ablations.py teacher`" if teacher else ""))
    dataset = unlabelled_dataset(files, net.canvas, net.scale_factor)
    backgrounds = load_backgrounds(BACKGROUNDS, 64) if BACKGROUNDS.is_dir() else None
    return estimator, dataset, backgrounds


def _labelled(estimator):
    """SynthLR-train people and RSC-Net's loss for the weak (2D) and semi (3D + 2D) variants."""
    from lowres_hps.data import SynthLRReader
    from lowres_hps.data.multires_dataset import MultiResAugmentConfig, MultiResolutionDataset

    net = estimator.model.config
    reader = SynthLRReader(ROOT / "data/synthlr/train")
    aug = MultiResAugmentConfig(scale=(0.9, 1.1), flip_probability=0.5, color_jitter=0.2, noise_std=2.0)
    return MultiResolutionDataset([reader], canvas=net.canvas, convention=net.convention, body_model=net.body_model,
                                  pose_size=net.pose_spec.vector_size, scale_factor=net.scale_factor, augment=aug)


def teacher(args) -> None:
    """The unlabelled people's 2D keypoints from `lowres-hps label`'s teachers (MoveNet Thunder at the images' own
    resolution, Lightning's second opinion; needs `make pretrained`), ground truth discarded."""
    sys.path.insert(0, str(ROOT / "src"))
    from lowres_hps.apis.labeling import LabelConfig, TeacherLabeler
    from lowres_hps.apis.unlabelled import label_people
    from lowres_hps.commands.label import load_teacher

    torch.set_num_threads(args.threads)
    labeler = TeacherLabeler(load_teacher("movenet_thunder"), load_teacher("movenet_lightning"), LabelConfig())
    for source, out in zip(UNLABELLED, TEACHER):
        started = time.time()
        path, labelled = label_people(source, labeler, out)
        print(f"{path}: {labelled} people with teacher joints ({time.time() - started:.0f} s)")


def pretrain(args) -> None:
    from lowres_hps.apis.selfsup import selfsup_body3d
    from lowres_hps.methods.sspse import SSPSEConfig

    estimator, dataset, backgrounds = _setup(args.threads, args.start)
    started = time.time()
    t1 = _t1(args.start)
    # steps=0 of the mesh stage: T1 only; the written network equals the start.
    selfsup_body3d(estimator, dataset, t1 / "pretrain_only.safetensors", work_dir=t1, config=SSPSEConfig(),
                   pretrain_steps=args.steps, steps=0, batch_size=args.batch_size, backgrounds=backgrounds,
                   progress_bar=False)
    print(f"T1: {args.steps} steps in {time.time() - started:.0f} s -> {t1 / 'pretrain/model.safetensors'}")


def train(args) -> None:
    import dataclasses

    from lowres_hps.apis.selfsup import rsc_joint_loss, selfsup_body3d
    from lowres_hps.methods.sspse import SSPSEConfig

    overrides = {key: value if key == "mask_loss" else float(value)
                 for key, value in (item.split("=", 1) for item in args.set)}
    config = dataclasses.replace(SSPSEConfig(**overrides), **VARIANTS[args.variant])
    estimator, dataset, backgrounds = _setup(args.threads, args.start, teacher=config.lambda_teacher > 0)
    labelled = joint = None
    if config.supervision != "self":
        labelled, joint = _labelled(estimator), rsc_joint_loss(estimator, 5.0 if config.supervision == "semi" else 0.0)
    teacher_loss = rsc_joint_loss(estimator) if config.lambda_teacher > 0 else None
    name = f"{args.variant}_s{args.seed}{args.tag}"
    started = time.time()
    path, metrics = selfsup_body3d(
        estimator, dataset, RUNS / f"{name}.safetensors", work_dir=RUNS / name, config=config,
        pretrained_parts=_t1(args.start) / "pretrain/model.safetensors", steps=args.steps, batch_size=args.batch_size,
        lr=args.lr, seed=args.seed, backgrounds=backgrounds, labelled=labelled, joint_loss=joint,
        teacher_loss=teacher_loss, teacher="movenet_thunder (Lightning's second opinion)", progress_bar=False,
        trained_on={"sources": [str(p.relative_to(ROOT)) for p in (TEACHER if teacher_loss else UNLABELLED)]})
    print(f"{name}: {args.steps} steps in {time.time() - started:.0f} s -> {path}")


def evaluate(args) -> None:
    """MPJPE / PA-MPJPE on SynthLR at 4 heights, projected-3D AP (network alone and fitted, as ``predict``) at R = 64,
    and FG / part segmentation of the rendered mesh at 64 px (SynthLR-test, COCO-holdout)."""
    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from kp2d_real import SETS, VALIDATION_SETS, evaluate as evaluate_ap  # noqa: E402  (the benchmarks' scoring)
    from sspse_segmentation import build_dataset  # noqa: E402
    from torch.utils.data import DataLoader, Subset

    from lowres_hps.apis.registry import load_model
    from lowres_hps.data import SynthLRReader
    from lowres_hps.data.multires_dataset import MultiResolutionDataset
    from lowres_hps.evaluation.body3d import evaluate_body3d
    from lowres_hps.evaluation.body_masks import body_mask_metrics
    from lowres_hps.fitting import KeypointFitConfig

    name = f"start{args.tag}" if args.variant == "start" else f"{args.variant}_s{args.seed}{args.tag}"
    estimator = _load_start(args.start) if args.variant == "start" else load_model(str(RUNS / f"{name}.safetensors"))
    cfg = estimator.model.config
    result: dict = {"model": name, "variant": args.variant, "seed": args.seed}
    started = time.time()
    if args.validation:  # choices are made here: SynthLR-val and LSPET-val, never the test sets
        args.synthlr, args.people, args.heights = str(ROOT / "data/synthlr/val_crops"), 100, [96, 32]
    dataset = MultiResolutionDataset([SynthLRReader(args.synthlr)], canvas=cfg.canvas, convention=cfg.convention,
                                     body_model=cfg.body_model, pose_size=cfg.pose_spec.vector_size,
                                     num_ranges=cfg.num_ranges, person_heights=args.heights,
                                     scale_factor=cfg.scale_factor)
    subset = Subset(dataset, range(min(args.people, len(dataset))))
    with torch.no_grad():
        result["synthlr"] = {"set": Path(args.synthlr).name, "people": len(subset), **evaluate_body3d(
            estimator.model.eval(), estimator.body, DataLoader(subset, batch_size=25), list(args.heights))}
    sets = VALIDATION_SETS if args.validation else {set_name: SETS[set_name] for set_name in args.sets}
    result["ap_alone"] = evaluate_ap(estimator, [64], sets)
    if args.fit:  # what `predict` reports (slow: ~3 min for the two test sets on 2 cores)
        result["ap_fitted"] = evaluate_ap(estimator, [64], sets, fit_to=load_model("lrmove_l_128"),
                                          fit_config=KeypointFitConfig())
    if not args.validation:
        result["segmentation"] = {set_name: body_mask_metrics(estimator, build_dataset(set_name, cfg, [64], people),
                                                              size=224)
                                  for set_name, people in (("synthlr_test", args.people), ("coco_holdout", 1000))}
    result["seconds"] = round(time.time() - started)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}{'_val' if args.validation else ''}.json"
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result)[:3000])


def _mean(values: list[float], scale: float = 1.0, digits: int = 1) -> str:
    values = [v * scale for v in values if v is not None]
    if not values:
        return "-"
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    spread = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    return f"{mean:.{digits}f} ± {spread:.{digits}f}"


def validation_table(tag: str) -> None:
    """Markdown rows of the validation results of one tag (one seed each)."""
    print("| run | SynthLR-val PA 96 / 32 | MPJPE 32 | LSPET-val AP / PCK alone | AP / PCK fitted (`predict`) |")
    print("|---|---|---|---|---|")
    results = [json.loads(p.read_text()) for p in sorted(RESULTS.glob(f"*{tag}_val.json"))]
    order = ["start", *VARIANTS]
    for r in sorted(results, key=lambda r: (order.index(r["variant"]), r["model"])):
        synth, alone, fitted = r["synthlr"], r["ap_alone"]["lspet_val@64"], r.get("ap_fitted", {}).get("lspet_val@64")
        fit = f"{fitted['AP']:.3f} / {fitted['pck@0.2']:.2f}" if fitted else "-"
        print(f"| {r['model']} | {synth['pa_mpjpe_mm@96']:.1f} / {synth['pa_mpjpe_mm@32']:.1f} | "
              f"{synth['mpjpe_mm@32']:.1f} | {alone['AP']:.3f} / {alone['pck@0.2']:.2f} | {fit} |")


def table(args) -> None:
    """Markdown rows of the test results: mean ± sd over seeds (``--validation``: the validation runs of a tag)."""
    if args.validation:
        validation_table(args.tag)
        return
    rows: dict[str, list[dict]] = {}
    for path in sorted(RESULTS.glob("*.json")):
        if path.stem.endswith("_val"):
            continue
        result = json.loads(path.read_text())
        if args.tag and not result["model"].endswith(args.tag):
            continue
        rows.setdefault(result["variant"], []).append(result)
    print("| variant | seeds | AP@64 alone COCO / LSPET | AP@64 fitted COCO / LSPET | PA-MPJPE 176 / 96 / 52 / 32 "
          "| MPJPE 32 | SynthLR FG acc / F1 | parts acc / F1 | COCO FG acc / F1 |")
    print("|---|---|---|---|---|---|---|---|---|")
    order = ["start", *VARIANTS]
    for variant in sorted(rows, key=order.index):
        results = rows[variant]

        def pick(*keys):
            out = []
            for r in results:
                value = r
                for key in keys:
                    value = value.get(key) if isinstance(value, dict) else None
                out.append(value)
            return out

        ap = " / ".join(_mean(pick(kind, f"{s}@64", "AP"), digits=3) for kind in ("ap_alone",)
                        for s in ("coco_holdout", "lspet_test"))
        fitted = " / ".join(_mean(pick("ap_fitted", f"{s}@64", "AP"), digits=3) for s in ("coco_holdout", "lspet_test"))
        pa = " / ".join(_mean(pick("synthlr", f"pa_mpjpe_mm@{h}")) for h in (176, 96, 52, 32))
        seg = pick("segmentation", "synthlr_test", "64")
        coco = pick("segmentation", "coco_holdout", "64")
        fg = lambda rows_, key: _mean([r.get(key) if r else None for r in rows_], 100.0)  # noqa: E731
        print(f"| {variant} | {len(results)} | {ap} | {fitted} | {pa} | {_mean(pick('synthlr', 'mpjpe_mm@32'))} "
              f"| {fg(seg, 'fg_accuracy')} / {fg(seg, 'fg_f1')} | {fg(seg, 'part_accuracy')} / {fg(seg, 'part_f1')} "
              f"| {fg(coco, 'fg_accuracy')} / {fg(coco, 'fg_f1')} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("teacher")
    p.add_argument("--threads", type=int, default=2)
    p.set_defaults(run=teacher)
    p = sub.add_parser("pretrain")
    p.add_argument("--start", default=START, help="the 3D model self-supervision starts from")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.set_defaults(run=pretrain)
    p = sub.add_parser("train")
    p.add_argument("variant", choices=sorted(VARIANTS))
    p.add_argument("--start", default=START, help="the 3D model self-supervision starts from (its T1 must exist)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=2e-5)
    p.add_argument("--tag", default="")
    p.add_argument("--set", nargs="*", default=[], metavar="LAMBDA=VALUE",
                   help="SSPSEConfig weights, e.g. lambda_mask=10 lambda_jigsaw=0.1")
    p.add_argument("--threads", type=int, default=2)
    p.set_defaults(run=train)
    p = sub.add_parser("evaluate")
    p.add_argument("variant", choices=sorted(VARIANTS) + ["start"])
    p.add_argument("--start", default=START, help="with variant start: the model to score")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tag", default="")
    p.add_argument("--synthlr", default=str(ROOT / "data/synthlr/test_crops"))
    p.add_argument("--no-fit", dest="fit", action="store_false",
                   help="skip the AP of bodies fitted to the 2D default's keypoints")
    p.add_argument("--validation", action="store_true",
                   help="score on the validation people instead (SynthLR-val 100 at 96 / 32 px, LSPET-val AP at 64)")
    p.add_argument("--people", type=int, default=300)
    p.add_argument("--heights", nargs="+", type=float, default=[176, 96, 52, 32])
    p.add_argument("--sets", nargs="+", default=["coco_holdout", "lspet_test"])
    p.add_argument("--threads", type=int, default=2)
    p.set_defaults(run=evaluate)
    p = sub.add_parser("table")
    p.add_argument("--tag", default="", help="only runs of this tag (and the start)")
    p.add_argument("--validation", action="store_true", help="the validation results of the tag")
    p.set_defaults(run=table)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
