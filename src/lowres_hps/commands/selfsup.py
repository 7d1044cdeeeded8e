"""``lowres-hps selfsup INPUTS... --out TUNED.safetensors``: fine-tune a 3D body model on unlabelled real people (SSPSE).

INPUTS are images, folders and videos of real people, or COCO-format ``.json`` files of people with boxes and
``segmentation`` masks (keypoints are ignored). People are found by ``predict``'s detector; their masks come from
background subtraction in videos (a static camera) and from the MILI model's mask head in still images. The
collected people go to ``TUNED.work/people/people.json`` (with ``--teacher``, a 2D teacher's keypoints of them to
``TUNED.work/teacher/``: pseudo-labels for an extra 2D term, not in the paper); the two training stages (T1: pretext
heads, discriminator and texture net; T2: the network) to ``TUNED.work/pretrain`` and ``TUNED.work/mesh``. Running the
same command again resumes. ``predict --model3d TUNED.safetensors`` then uses the tuned model.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

__all__ = ["main", "add_arguments"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", help="images, folders, videos, or COCO .json files of people with masks")
    p.add_argument("--out", required=True, help="the tuned model (.safetensors, with its model card)")
    p.add_argument("--model3d", default=None,
                   help="the 3D model to start from: a registered name or checkpoint (default: predict's 3D default)")
    p.add_argument("--max-steps", type=int, default=600,
                   help="steps of the mesh stage (T2; exact below one pass over the people, else whole passes)")
    p.add_argument("--pretrain-steps", type=int, default=300,
                   help="steps of the pretraining stage (T1: pretext heads, discriminator, texture net)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=5e-6,
                   help="Adam learning rate of the network in the mesh stage (the paper's; higher rates hurt more here)")
    p.add_argument("--pretext", nargs="*", choices=["jigsaw", "rotation", "inpainting"],
                   default=["jigsaw", "rotation", "inpainting"], help="image-manipulation tasks (L_IM)")
    p.add_argument("--rendering", nargs="*", choices=["rgb", "mask", "real"], default=["rgb", "mask", "real"],
                   help="neural-rendering losses (L_NR): RGB, mask, and realism against the discriminator")
    p.add_argument("--teacher", default=None,
                   help="a high-resolution 2D teacher whose keypoints of the people train the network too (not in the "
                        "paper): movenet_thunder or movenet_lightning (make pretrained), or a registered 2D model such "
                        "as lrmove_l_128; default: none, the paper's self-supervision alone")
    p.add_argument("--second-teacher", default=None,
                   help="with --teacher: a second opinion; joints where the two disagree by over 10%% of the box "
                        "stay unlabelled (as lowres-hps label)")
    p.add_argument("--lambda-teacher", type=float, default=1.0, help="weight of the teacher's 2D term")
    p.add_argument("--backgrounds", default=None,
                   help="a folder of real images without people for the realism loss's composites (default: the other "
                        "people's crops)")
    p.add_argument("--frames", default=None, metavar="A:B",
                   help="videos: use frames A to B only (1-based, inclusive): keep frames you validate on out")
    p.add_argument("--max-frames", type=int, default=None, help="videos: use at most this many frames each")
    p.add_argument("--detector", choices=["auto", "mili", "multipose", "hog"], default="auto",
                   help="the person detector for videos (as predict's)")
    p.add_argument("--detect-every", type=int, default=2, help="videos: look for people on every n-th frame")
    p.add_argument("--min-people", type=int, default=32, help="stop with an error below this many usable people")
    p.add_argument("--work-dir", default=None, help="people and run checkpoints (default: OUT with .work)")
    p.add_argument("--restart", action="store_true", help="discard the work folder and start again")
    p.add_argument("--collect-only", action="store_true", help="only collect the people and their masks")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--seed", type=int, default=0)


def _collect(args, inputs: list[Path], work: Path, net) -> tuple[list[Path], list[str]]:
    """The people files to train on: given ``.json`` files as they are, the other inputs collected once into
    ``work/people/people.json`` (reused when it exists)."""
    from tqdm import tqdm

    from lowres_hps.apis.inputs import collect_inputs
    from lowres_hps.apis.unlabelled import PEOPLE_FILE, collect_unlabelled_people, mili_image_segmenter
    from lowres_hps.commands import parse_frame_range
    from lowres_hps.commands.predict import build_detector

    files = [p for p in inputs if p.suffix.lower() == ".json"]
    media = [p for p in inputs if p.suffix.lower() != ".json"]
    sources = [str(p) for p in inputs]
    if not media:
        return files, sources
    people = work / "people" / PEOPLE_FILE
    if people.is_file():
        print(f"reusing the people collected earlier ({people})")
        return files + [people], sources
    detector_args = argparse.Namespace(detector=args.detector, detector_upscale=None, detector_min_score=None,
                                       detector_model=None, masks=False, device=args.device)
    detector = build_detector(detector_args)
    segmenter = None
    found, _ = collect_inputs(media)
    if any(source.kind == "image" for source in found):  # MILI's mask head only for still images
        try:
            segmenter = mili_image_segmenter(device=args.device)
        except (ValueError, FileNotFoundError, KeyError) as exc:  # no MILI model installed: videos only
            print(f"note: still images cannot be used ({exc})", file=sys.stderr)
    bar = tqdm(desc="people", unit="image", disable=not sys.stderr.isatty())
    try:
        path, report = collect_unlabelled_people(
            media, work / "people", detector, segmenter, frame_range=parse_frame_range(args.frames, "--frames"),
            max_frames=args.max_frames, detect_every=args.detect_every, progress=lambda _: bar.update())
    finally:
        bar.close()
    print(report.summary())
    (work / "people" / "collection.json").write_text(json.dumps(dataclasses.asdict(report), indent=1))
    return files + [path], sources


def _load_teacher(name: str):
    from lowres_hps.apis.registry import load_model
    from lowres_hps.commands.label import TEACHERS, load_teacher

    return load_teacher(name) if name in TEACHERS else load_model(name)


def _teacher_files(args, files: list[Path], work: Path) -> list[Path]:
    """Each people file with the teacher's keypoints, made once per teacher into ``work/teacher/`` (reused when
    there)."""
    from tqdm import tqdm

    from lowres_hps.apis.labeling import LabelConfig, TeacherLabeler
    from lowres_hps.apis.unlabelled import label_people

    folder = work / "teacher"
    folder.mkdir(parents=True, exist_ok=True)
    teachers = "+".join(Path(name).stem for name in filter(None, (args.teacher, args.second_teacher)))
    outs = [folder / f"{index}_{path.stem}_{teachers}.json" for index, path in enumerate(files)]
    if all(out.is_file() for out in outs):
        print(f"reusing the teacher's keypoints made earlier ({folder})")
        return outs
    second = _load_teacher(args.second_teacher) if args.second_teacher else None
    labeler = TeacherLabeler(_load_teacher(args.teacher), second, LabelConfig())
    for path, out in zip(files, outs):
        if out.is_file():
            continue
        with tqdm(desc=f"teacher {path.name}", unit="image", disable=not sys.stderr.isatty()) as bar:
            _, labelled = label_people(path, labeler, out, progress=bar.update)
        print(f"{path}: the teacher labelled {labelled} people -> {out}")
    return outs


def main(args: argparse.Namespace) -> int:
    from lowres_hps.apis.adaptation import AdaptationError
    from lowres_hps.apis.selfsup import load_backgrounds, rsc_joint_loss, selfsup_body3d, unlabelled_dataset
    from lowres_hps.commands import open_work_and_model3d
    from lowres_hps.methods.sspse import SSPSEConfig

    inputs = [Path(p) for p in args.inputs]
    missing = [str(p) for p in inputs if not p.exists()]
    if missing:
        raise FileNotFoundError(f"no such input: {', '.join(missing)}")
    out = Path(args.out)
    if out.suffix != ".safetensors":
        raise ValueError(f"--out must be a .safetensors file, got {out}")
    if args.second_teacher and not args.teacher:
        raise ValueError("--second-teacher needs --teacher")
    config = SSPSEConfig(pretext=tuple(args.pretext), rendering=tuple(args.rendering),
                         lambda_teacher=args.lambda_teacher if args.teacher else 0.0)
    work, estimator = open_work_and_model3d(args, out)
    net = estimator.model.config
    started = time.perf_counter()
    files, sources = _collect(args, inputs, work, net)
    if args.teacher and not args.collect_only:
        files = _teacher_files(args, files, work)
    dataset = unlabelled_dataset(files, net.canvas, net.scale_factor)
    print(f"{len(dataset)} unlabelled people from {len(files)} file(s)")
    if len(dataset) < args.min_people:
        raise AdaptationError(f"only {len(dataset)} usable people (at least --min-people {args.min_people} needed); "
                              f"give more images or frames, or a lower --min-people")
    if args.collect_only:
        return 0
    backgrounds = load_backgrounds(args.backgrounds, config.render_size, seed=args.seed) if args.backgrounds else None
    path, _ = selfsup_body3d(
        estimator, dataset, out, work_dir=work, config=config, pretrain_steps=args.pretrain_steps,
        steps=args.max_steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed, backgrounds=backgrounds,
        teacher_loss=rsc_joint_loss(estimator) if args.teacher else None,
        teacher=" + ".join(filter(None, (args.teacher, args.second_teacher))) or None,
        device=args.device, name=out.stem, trained_on={"sources": sources}, progress_bar=sys.stderr.isatty())
    print(f"wrote {path} ({time.perf_counter() - started:.0f} s; training logs {work}/pretrain and {work}/mesh "
          f"metrics.csv); use it with: lowres-hps predict ... --model3d {path}")
    return 0
