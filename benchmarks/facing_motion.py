"""Which way do `predict`'s bodies face in a static camera's video, and would the people's motion tell?

    python benchmarks/facing_motion.py [--sequences 6] [--frames 60] [--height 52]

A diagnosis, not a method. The 2D default labels many people seen from behind as if seen from the front (left and
right swapped: 33% of SynthLR-val people), and the keypoint fit then turns the body around. In a video, people
mostly walk forwards, so where a person goes says which way they face. On rendered static-camera videos with 3D
truth (SynthLR sequences, seeds 9000 + k; walkers face their direction of travel, as the generator makes them;
``--headings across``: they cross the view, ``any``: they walk any way),
reduced so that the median person is ``--height`` px tall, `predict`'s path runs on the ground-truth boxes (the 2D
default, the 3D default with its flip test, the keypoint fit) and this reports, over people and frames:

* how often the body faces the wrong way: the angle between the torso's facing direction (spine x shoulder line) of the body
  and of the truth, in the ground plane (the camera's x-z plane), over 90 degrees; for the network alone and fitted;
* how often the direction of travel, estimated from the fitted bodies' own hip positions over the track (a straight
  line fitted to them; no truth used), lies within 90 degrees of the true facing: how reliable motion would be as the
  judge of left and right. Tracks moving less than ``--min-travel`` body heights are left out (standing people).

``--causal`` runs what ``predict --track --facing-from-motion`` does instead (:class:`PeopleTracker` with
``facing_from_motion``: each track's direction of travel from its earlier frames only, a left-right exchanged refit
of the bodies that face against it, kept when it faces with it): wrong-way rate, MPJPE and PA-MPJPE of the bodies as
``predict`` gives them without and with it, and the 2D keypoints' error, over the people of confirmed tracks.

Results: benchmarks/results/facing_motion.json, one entry per ``--headings`` (``causal/<headings>/seed<seed>[/<tag>]``
with ``--causal``).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("ANNY_CACHE_DIR", str(ROOT / ".cache" / "anny"))
sys.path.insert(0, str(ROOT / "benchmarks"))
from tracking_synthetic import scene_generator  # noqa: E402 - a sibling script
SEED = 9000


def ground_facing(keypoints: np.ndarray) -> np.ndarray:
    """(..., 17, 3) COCO-17 in camera axes (y down) -> (..., 2) unit direction the torso faces in the ground (x-z)
    plane (:func:`lowres_hps.body.keypoints.ground_facing`)."""
    from lowres_hps.body.keypoints import ground_facing as facing

    return facing(torch.as_tensor(np.asarray(keypoints, np.float64))).numpy()


def angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Degrees between unit 2D vectors."""
    return np.degrees(np.arccos(np.clip((a * b).sum(-1), -1.0, 1.0)))


def box_of(prediction) -> np.ndarray:
    return np.asarray(prediction.bbox, np.float64)


def motion_judged(predictor, model3d, people: list[tuple], heading: np.ndarray) -> list[dict[str, float]]:
    """For one moving track: each person's body fitted to its 2D keypoints as given and with left and right swapped;
    the swapped fit is kept when the first faces more than 90 degrees from the direction of travel. Per person: how
    often each choice (as given, motion-judged, the better of the two by the truth) faces the wrong way, and its
    MPJPE / PA-MPJPE (mm, COCO-17, hips-rooted) against the truth."""
    from lowres_hps.body.keypoints import get_convention, hips_root
    from lowres_hps.evaluation.keypoints3d import mpjpe, pa_mpjpe
    from lowres_hps.fitting import KeypointFitConfig
    from lowres_hps.geometry.transforms import apply_affine

    crops = [predictor.body_crop(image, box) for image, box, *_ in people]
    inputs = torch.stack([c.image for c in crops])
    ranges = torch.tensor([c.range_index for c in crops])
    affines = torch.stack([c.affine for c in crops]).to(torch.float64)
    keypoints = torch.as_tensor(np.stack([p[2] for p in people]))
    flip = get_convention("coco17").flip_permutation
    bodies = {}
    for name, points in (("given", keypoints), ("swapped", keypoints[:, flip])):
        fit = model3d.fit_bodies(inputs, ranges, apply_affine(points[..., :2], affines), points[..., 2],
                                 KeypointFitConfig(), with_vertices=False)
        bodies[name] = fit.keypoints3d.double().numpy()
    truth = np.stack([p[3] for p in people])
    facing = {name: ground_facing(b) for name, b in bodies.items()}
    true_facing = ground_facing(truth)
    swap = angle(facing["given"], heading[None]) > 90
    oracle = angle(facing["swapped"], true_facing) < angle(facing["given"], true_facing)
    choices = {"given": np.zeros_like(swap), "motion": swap, "oracle": oracle}
    rows = [{} for _ in people]
    gt = torch.as_tensor(truth, dtype=torch.float64)
    for name, chosen in choices.items():
        body = np.where(chosen[:, None, None], bodies["swapped"], bodies["given"])
        wrong = angle(ground_facing(body), true_facing) > 90
        pred = torch.as_tensor(body)
        errors = 1000 * mpjpe(pred - hips_root(pred), gt - hips_root(gt))
        aligned = 1000 * pa_mpjpe(pred, gt)
        for i, row in enumerate(rows):
            row.update({f"{name}_wrong_way": float(wrong[i]), f"{name}_mpjpe": float(errors[i]),
                        f"{name}_pa_mpjpe": float(aligned[i])})
    for i, row in enumerate(rows):
        row["swapped"] = float(swap[i])
    return rows


def body_rows(predicted: list, tracked: list, people: list, factor: float, key: str) -> dict[int, dict[str, float]]:
    """Per person of ``tracked`` (index into ``people``, the truth): wrong way / MPJPE / PA-MPJPE (mm) of its body
    and its 2D keypoints' mean error (fraction of the person's height) and PCK at 0.1 of the height over the
    visible keypoints, named ``<key>_<metric>``; ``turned`` when the tracker turned the body round."""
    from lowres_hps.body.keypoints import hips_root
    from lowres_hps.evaluation.keypoints3d import mpjpe, pa_mpjpe

    rows = {}
    for person in tracked:
        j = next(n for n, p in enumerate(predicted) if p.bbox is person.bbox)  # the tracker keeps the box object
        truth = people[j]
        gt = torch.as_tensor(truth.keypoints3d, dtype=torch.float64)[None]
        body = np.asarray(person.keypoints_3d, np.float64)
        pred = torch.as_tensor(body)[None]
        visible = truth.keypoints2d[:, 2] > 0
        height = truth.bbox[3] * factor
        error = np.linalg.norm(np.asarray(person.keypoints)[visible, :2] - truth.keypoints2d[visible, :2] * factor,
                               axis=-1) / height
        rows[j] = {f"{key}_wrong_way": float(angle(ground_facing(body), ground_facing(truth.keypoints3d)) > 90),
                   f"{key}_mpjpe": float(1000 * mpjpe(pred - hips_root(pred), gt - hips_root(gt))[0]),
                   f"{key}_pa_mpjpe": float(1000 * pa_mpjpe(pred, gt)[0]),
                   f"{key}_kp2d_error": float(error.mean()) if visible.any() else 0.0,
                   f"{key}_kp2d_pck10": float((error < 0.1).mean()) if visible.any() else 1.0,
                   f"{key}_turned": float(bool((person.body or {}).get("left_right_swapped", False)))}
    return rows


def main() -> None:
    import cv2

    from lowres_hps.apis.predictor import Predictor
    from lowres_hps.apis.registry import load_model
    from lowres_hps.fitting import KeypointFitConfig

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sequences", type=int, default=6)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--height", type=float, default=52.0, help="median person height after reduction (px)")
    parser.add_argument("--model2d", default="lrmove_l_128")
    parser.add_argument("--model3d", default="rsc_move_c128_ft5")
    parser.add_argument("--min-travel", type=float, default=0.5, help="body heights a track must move")
    parser.add_argument("--headings", choices=["across", "any"], default="across",
                        help="walkers cross the view, or walk any way (towards and away from the camera too)")
    parser.add_argument("--motion-swap", action="store_true",
                        help="also refit each person of a moving track with its 2D keypoints' left and right swapped "
                             "and keep that fit when the first faces against the track's direction of travel")
    parser.add_argument("--causal", action="store_true",
                        help="run predict's tracked path with --facing-from-motion (causal headings) instead")
    parser.add_argument("--window", type=float, nargs="+", default=[1.5],
                        help="--causal: HeadingConfig.window_s values (s)")
    parser.add_argument("--min-speed", type=float, nargs="+", default=[0.5],
                        help="--causal: HeadingConfig.min_speed values (m/s)")
    parser.add_argument("--judge-within", type=float, nargs="+", default=[90.0],
                        help="--causal: TrackingConfig.judge_within_deg values (degrees from the line of sight)")
    parser.add_argument("--positions", nargs="+", default=["ground"], choices=["ground", "root"],
                        help="--causal: TrackingConfig.heading_positions values (root: session 13's)")
    parser.add_argument("--seed", type=int, default=SEED, help="--causal: the first sequence's seed")
    parser.add_argument("--tag", default="", help="--causal: results key suffix (causal/<headings>/seed<seed>/<tag>)")
    parser.add_argument("--fps", type=float, default=25.0, help="--causal: the sequences' frame rate")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    generator = scene_generator()
    model2d, model3d = load_model(args.model2d), load_model(args.model3d)
    fitted = Predictor(model2d, body_estimator=model3d, fit_keypoints=KeypointFitConfig())
    if args.causal:
        run_causal(args, generator, fitted)
        return
    network = Predictor(model2d, body_estimator=model3d)
    started = time.perf_counter()
    wrong = {"network": [], "fitted": []}
    motion_errors, track_lengths = [], []
    judged: list[dict[str, float]] = []
    for k in range(args.sequences):
        frames = generator.sequence(SEED + k, 0, num_frames=args.frames, headings=args.headings)
        heights = [p.bbox[3] for f in frames for p in f.people]
        factor = min(1.0, args.height / float(np.median(heights))) if heights else 1.0
        tracks: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
        refits: dict[int, list[tuple]] = {}
        for sample in frames:
            people = [p for p in sample.people if (p.keypoints2d[[5, 6, 11, 12], 2] > 0).all()]
            if not people:
                continue
            image = cv2.resize(sample.image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
            boxes = np.array([p.bbox for p in people], np.float64) * factor
            for name, predictor in (("network", network), ("fitted", fitted)):
                for person, prediction in zip(people, predictor.predict_image(image, boxes)):
                    truth = ground_facing(person.keypoints3d)
                    body = np.asarray(prediction.keypoints_3d, np.float64)
                    wrong[name].append(float(angle(ground_facing(body), truth) > 90))
                    if name == "fitted":
                        hips = (body[11] + body[12]) / 2
                        tracks.setdefault(person.person_id, []).append((hips, truth))
                        refits.setdefault(person.person_id, []).append(
                            (image, box_of(prediction), np.asarray(prediction.keypoints, np.float64),
                             person.keypoints3d, body))
        for track_id, track in tracks.items():
            if len(track) < 10:
                continue
            hips = np.stack([t[0] for t in track])[:, [0, 2]]
            steps = np.arange(len(hips), dtype=np.float64)
            velocity = np.polyfit(steps, hips, 1)[0]  # the straight line through the track's ground positions
            travel = np.linalg.norm(velocity) * (len(hips) - 1)  # metres, in the assumed camera
            if travel < args.min_travel * 1.7:  # ~1.7 m per body height
                continue
            heading = velocity / np.linalg.norm(velocity)
            truths = np.stack([t[1] for t in track])
            motion_errors.extend((angle(heading[None], truths) > 90).astype(float).tolist())
            track_lengths.append(len(track))
            if args.motion_swap:
                judged.extend(motion_judged(fitted, model3d, refits[track_id], heading))
        print(f"sequence {k}: {len(wrong['fitted'])} people-frames so far, {time.perf_counter() - started:.0f} s",
              flush=True)
    result = {
        "people_frames": len(wrong["fitted"]),
        "facing_wrong_network": round(float(np.mean(wrong["network"])), 3),
        "facing_wrong_fitted": round(float(np.mean(wrong["fitted"])), 3),
        "tracks_moving": len(track_lengths),
        "people_frames_on_moving_tracks": len(motion_errors),
        "motion_heading_wrong": round(float(np.mean(motion_errors)), 3) if motion_errors else None,
        **({f"motion_swap/{key}": round(float(np.mean([j[key] for j in judged])), 4) for key in judged[0]}
           if judged else {}),
        "settings": vars(args), "seconds": round(time.perf_counter() - started, 1),
        "command": "python benchmarks/facing_motion.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d")}
    print(result)
    out = ROOT / "benchmarks/results/facing_motion.json"
    results = json.loads(out.read_text()) if out.is_file() else {}
    results = results if "across" in results or "any" in results else {"across": results} if results else {}
    results[args.headings] = result
    out.write_text(json.dumps(results, indent=1))


def run_causal(args, generator, predictor) -> None:
    """``--causal``: every sequence through :class:`PeopleTracker` with ``facing_from_motion``, as ``predict`` runs
    it, one tracker per heading setting (``--window`` x ``--min-speed``) on the same predictions; each person-frame
    of a confirmed track is scored as predicted (``given``) and as each tracker hands it on."""
    import itertools

    import cv2

    from lowres_hps.apis.people_tracker import PeopleTracker, TrackingConfig
    from lowres_hps.tracking import HeadingConfig

    settings = [(HeadingConfig(window_s=w, min_speed=v), a, p)
                for w, v, a, p in itertools.product(args.window, args.min_speed, args.judge_within, args.positions)]
    keys = [f"w{h.window_s:g}_v{h.min_speed:g}" + ("" if a >= 90 else f"_a{a:g}") + ("" if p == "ground" else f"_{p}")
            for h, a, p in settings]
    started = time.perf_counter()
    rows: list[dict[str, float]] = []
    for k in range(args.sequences):
        frames = generator.sequence(args.seed + k, 0, num_frames=args.frames, headings=args.headings)
        heights = [p.bbox[3] for f in frames for p in f.people]
        factor = min(1.0, args.height / float(np.median(heights))) if heights else 1.0
        plain = PeopleTracker(TrackingConfig(smooth=False), fps=args.fps)
        trackers = [PeopleTracker(TrackingConfig(smooth=False, facing_from_motion=True, heading=h, judge_within_deg=a,
                                                 heading_positions=p),
                                  fps=args.fps, refit=predictor.refit_left_right) for h, a, p in settings]
        for index, sample in enumerate(frames):
            people = [p for p in sample.people if (p.keypoints2d[[5, 6, 11, 12], 2] > 0).all()]
            image = cv2.resize(sample.image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
            predicted = predictor.predict_image(image, np.array([p.bbox for p in people], np.float64).reshape(-1, 4)
                                                * factor) if people else []
            frame_rows = body_rows(predicted, plain.update(index, predicted), people, factor, "given")
            for key, tracker in zip(keys, trackers):
                for j, row in body_rows(predicted, tracker.update(index, predicted, image), people, factor,
                                        key).items():
                    frame_rows[j].update(row)  # the same people are confirmed in every tracker
            rows.extend(frame_rows.values())
        print(f"sequence {k}: {len(rows)} people-frames so far, {time.perf_counter() - started:.0f} s", flush=True)
    result = {"people_frames": len(rows),
              **{key: round(float(np.mean([r[key] for r in rows])), 4) for key in rows[0] if "turned" not in key or
                 not key.startswith("given")},
              "settings": vars(args), "seconds": round(time.perf_counter() - started, 1),
              "command": "python benchmarks/facing_motion.py " + " ".join(sys.argv[1:]),
              "date": time.strftime("%Y-%m-%d")}
    print(json.dumps(result, indent=1))
    out = ROOT / "benchmarks/results/facing_motion.json"
    results = json.loads(out.read_text()) if out.is_file() else {}
    results[f"causal/{args.headings}/seed{args.seed}" + (f"/{args.tag}" if args.tag else "")] = result
    out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
