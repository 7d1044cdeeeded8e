"""Which way `predict`'s bodies face on vtest.avi, without and with ``--facing-from-motion`` (no ground truth).

    python benchmarks/facing_vtest.py [--frames 795] [--threads 2]

vtest.avi has no 3D truth here, so this reports label-free checks of ``predict``'s tracked path (MILI's detector, the
2D default, the 3D default with its flip test and the keypoint fit, the tracker of ``predict`` without smoothing),
for frames 1-400 and 401-795 (the held-out half) separately, on the same predictions with a plain tracker and with
``facing_from_motion`` ones (one per heading setting, ``--window`` x ``--min-speed``):

* ``turned``: the share of people-frames whose body the motion judge turned round;
* ``flips``: the share of a track's consecutive frames whose torso's facing (in the camera's x-z plane) changes by
  more than 90 degrees: a body that turns round from one frame to the next, which walking people do not do;
* ``against_travel``: over people-frames of tracks walking 0.5-3 m/s, the share whose body faces more than 90 degrees
  from the track's direction of travel, here from a line through the track's positions one second either side (past
  and future frames). Positions are where the bottoms of the boxes meet the ground plane fitted to the plain
  tracker's feet in that half (:func:`lowres_hps.tracking.fit_ground_plane`), the same for every tracker, and facings
  are the torsos' on that plane. Not truth, and close to the judge's own signal with ``--positions ground``, so it
  shows how consistent the outputs are with the motion rather than how right they are;
* ``against_travel_root``: the same with the bodies' roots in the camera's x-z plane, as session 13 measured it (their
  depth comes from their size and jitters by metres for small people, so most "walking" there is jitter);
* ``fit_distance``: the mean distance of the projected 3D keypoints from the 2D keypoints they were fitted to
  (scores >= 0.3), in person heights: what the refit costs in following its (exchanged) keypoints.

Results: benchmarks/results/facing_vtest.json.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("ANNY_CACHE_DIR", str(ROOT / ".cache" / "anny"))
VTEST = ROOT.parent / "shared/data/opencv_samples/vtest.avi"
HALVES = {"frames_1_400": (0, 400), "frames_401_795": (400, 10 ** 9)}


def record(person, frame: int) -> dict:
    from lowres_hps.body.keypoints import ground_facing, torso_facing

    keypoints = np.asarray(person.keypoints)
    usable = keypoints[:, 2] >= 0.3
    distance = np.linalg.norm(np.asarray(person.keypoints_3d_projected)[usable] - keypoints[usable, :2], axis=-1)
    points = torch.as_tensor(person.keypoints_3d, dtype=torch.float64)
    x, y, w, h = np.asarray(person.bbox, np.float64)
    return {"track": person.track_id, "frame": frame, "facing": ground_facing(points).numpy(),
            "torso": torso_facing(points).numpy(), "feet": np.asarray(person.keypoints_3d)[[15, 16]].mean(axis=0),
            "foot_pixel": np.array([x + w / 2, y + h]), "box_height": h, "focal": person.body["focal"],
            "principal_point": person.body["principal_point"],
            "root": np.asarray(person.body["translation"], np.float64)[[0, 2]],
            "turned": bool(person.body.get("left_right_swapped", False)),
            "fit_distance": float(distance.mean() / person.bbox[3]) if usable.any() else np.nan}


def fit_plane(rows: list[dict]):
    """The ground plane of the feet of people at least 30 px tall (``GroundConfig``'s defaults)."""
    from lowres_hps.tracking import GroundConfig, fit_ground_plane

    config = GroundConfig()
    feet = np.stack([r["feet"] for r in rows if r["box_height"] >= config.min_box_height
                     and 0 < r["feet"][2] <= config.max_depth])
    return fit_ground_plane(feet)


def _against(track: list[dict], fps: float, position, facing, max_speed: float) -> list[float]:
    from lowres_hps.tracking import line_velocity

    frames = np.array([r["frame"] for r in track])
    positions = np.stack([position(r) for r in track])
    found = []
    for row, here in zip(track, positions):
        near = (np.abs(frames - row["frame"]) <= fps) & np.isfinite(positions).all(axis=1)  # one second either side
        if near.sum() < 8 or not np.isfinite(here).all():
            continue
        velocity = line_velocity(frames[near] / fps, positions[near])
        if 0.5 <= np.linalg.norm(velocity) <= max_speed:
            found.append(float(facing(row) @ velocity < 0))
    return found


def summarise(rows: list[dict], fps: float, plane) -> dict:
    by_track: dict[int, list[dict]] = {}
    for row in rows:
        by_track.setdefault(row["track"], []).append(row)

    def on_ground(row):
        return plane.coordinates(plane.intersect(row["foot_pixel"], row["focal"], row["principal_point"]))

    flips, against, against_root = [], [], []
    for track in by_track.values():
        track.sort(key=lambda r: r["frame"])
        for a, b in zip(track, track[1:]):
            if b["frame"] == a["frame"] + 1:
                flips.append(float(plane.direction(a["torso"]) @ plane.direction(b["torso"]) < 0))
        # Faster than 3 m/s on the ground: a position near the horizon, too uncertain to tell a direction.
        against += _against(track, fps, on_ground, lambda r: plane.direction(r["torso"]), 3.0)
        against_root += _against(track, fps, lambda r: r["root"], lambda r: r["facing"], np.inf)
    return {"people_frames": len(rows), "tracks": len(by_track),
            "turned": round(float(np.mean([r["turned"] for r in rows])), 4) if rows else None,
            "flips": round(float(np.mean(flips)), 4) if flips else None, "flip_pairs": len(flips),
            "against_travel": round(float(np.mean(against)), 4) if against else None,
            "moving_people_frames": len(against),
            "against_travel_root": round(float(np.mean(against_root)), 4) if against_root else None,
            "moving_people_frames_root": len(against_root),
            "fit_distance": round(float(np.nanmean([r["fit_distance"] for r in rows])), 4) if rows else None}


def main() -> None:
    from lowres_hps.apis import detector as detectors
    from lowres_hps.apis.inputs import VideoReader
    from lowres_hps.apis.people_tracker import PeopleTracker, TrackingConfig
    from lowres_hps.apis.predictor import Predictor
    from lowres_hps.apis.registry import load_model
    from lowres_hps.commands.predict import TRACKER_THRESHOLDS
    from lowres_hps.fitting import KeypointFitConfig
    from lowres_hps.tracking import HeadingConfig

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--video", default=str(VTEST))
    parser.add_argument("--frames", type=int, default=795)
    parser.add_argument("--fps", type=float, default=None, help="the video's frame rate (default: its own)")
    parser.add_argument("--window", type=float, nargs="+", default=[1.5], help="HeadingConfig.window_s values (s)")
    parser.add_argument("--min-speed", type=float, nargs="+", default=[0.5],
                        help="HeadingConfig.min_speed values (m/s)")
    parser.add_argument("--judge-within", type=float, nargs="+", default=[90.0],
                        help="TrackingConfig.judge_within_deg values")
    parser.add_argument("--margin", type=float, nargs="+", default=[0.0], help="TrackingConfig.judge_margin_deg values")
    parser.add_argument("--positions", nargs="+", default=["ground"], choices=["ground", "root"],
                        help="TrackingConfig.heading_positions values")
    parser.add_argument("--first", type=int, default=0, help="the first frame index to use (0-based)")
    parser.add_argument("--tag", default="", help="results go to facing_vtest[_TAG].json")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    predictor = Predictor(load_model("lrmove_l_128"), detectors.MILIDetector(load_model("mili_multipose")),
                          body_estimator=load_model("rsc_move_c128_ft5"), fit_keypoints=KeypointFitConfig())
    reader = VideoReader(args.video)
    fps = args.fps or reader.fps or 25.0
    settings = {"plain": (None, 90.0, 0.0, "ground"), **{
        f"facing_from_motion_w{w:g}_v{v:g}" + ("" if a >= 90 else f"_a{a:g}") + (f"_m{m:g}" if m else "")
        + ("" if p == "ground" else f"_{p}"): (HeadingConfig(window_s=w, min_speed=v), a, m, p)
        for w, v, a, m, p in itertools.product(args.window, args.min_speed, args.judge_within, args.margin,
                                               args.positions)}}
    trackers = {name: PeopleTracker(TrackingConfig(tracker=TRACKER_THRESHOLDS, smooth=False,
                                                   facing_from_motion=heading is not None,
                                                   heading=heading or HeadingConfig(), judge_within_deg=within,
                                                   judge_margin_deg=margin, heading_positions=positions),
                                    fps=fps, refit=predictor.refit_left_right)
                for name, (heading, within, margin, positions) in settings.items()}
    rows: dict[str, list[dict]] = {name: [] for name in trackers}
    started = time.perf_counter()
    for index, frame in reader:
        if index >= args.frames:
            break
        if index < args.first:
            continue
        people = predictor.predict_image(frame)
        for name, tracker in trackers.items():
            rows[name].extend(record(p, index) for p in tracker.update(index, people, frame))
        if index % 50 == 0:
            print(f"frame {index}: {time.perf_counter() - started:.0f} s", flush=True)
    planes = {half: fit_plane([r for r in rows["plain"] if lo <= r["frame"] < hi]) for half, (lo, hi) in HALVES.items()
              if any(lo <= r["frame"] < hi for r in rows["plain"])}
    result = {name: {half: summarise([r for r in found if lo <= r["frame"] < hi], fps, planes[half])
                     for half, (lo, hi) in HALVES.items() if half in planes} for name, found in rows.items()}
    result["ground_planes"] = {half: {"a": p.a, "b": p.b, "c": p.c, "tilt_deg": round(p.tilt_deg, 2),
                                      "height_m": round(p.height, 3)} for half, p in planes.items()}
    result.update({"video": args.video, "fps": fps, "frames": args.frames,
                   "seconds": round(time.perf_counter() - started, 1),
                   "command": "python benchmarks/facing_vtest.py " + " ".join(sys.argv[1:]),
                   "date": time.strftime("%Y-%m-%d")})
    print(json.dumps(result, indent=1))
    out = ROOT / f"benchmarks/results/facing_vtest{'_' + args.tag if args.tag else ''}.json"
    out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
