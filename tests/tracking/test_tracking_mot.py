"""MOTChallenge files and scores: round trips, the rows of a frame, and motmetrics' counts on known cases."""
from __future__ import annotations

import numpy as np
import pytest

from lowres_hps.tracking.bytetrack import ByteTracker, Track
from lowres_hps.tracking.mot import mot_metrics, mot_rows, read_mot, write_mot


def two_walkers(num_frames: int = 20) -> np.ndarray:
    """Ground truth of two people walking toward each other, (2 * num_frames, 10) rows."""
    rows = []
    for frame in range(1, num_frames + 1):
        rows.append([frame, 1, 10.0 + 5 * frame, 50.0, 40.0, 100.0, 1, -1, -1, -1])
        rows.append([frame, 2, 400.0 - 5 * frame, 60.0, 40.0, 100.0, 1, -1, -1, -1])
    return np.array(rows)


def test_write_read_round_trip(tmp_path):
    rows = np.array([[1, 3, 10.5, 20.25, 30.125, 60.0, 0.875, -1, -1, -1],
                     [2, 3, 11.0, 20.0, 30.0, 61.5, 0.5, -1, -1, -1],
                     [2, 7, -4.0, 0.0, 12.0, 24.0, 1.0, -1, -1, -1]])
    path = tmp_path / "sub" / "hyp.txt"
    write_mot(path, rows)
    assert path.read_text().splitlines()[0] == "1,3,10.500,20.250,30.125,60.000,0.875,-1,-1,-1"
    np.testing.assert_array_equal(read_mot(path), rows)


def test_short_rows_are_padded_and_empty_files_read(tmp_path):
    path = tmp_path / "gt.txt"
    write_mot(path, [[1, 1, 0, 0, 10, 20]])
    np.testing.assert_array_equal(read_mot(path), [[1, 1, 0, 0, 10, 20, -1, -1, -1, -1]])
    path.write_text("1 2 3 4 5 6 1 1 0.5\n\n")  # space-separated, nine columns (a MOT17 gt row)
    np.testing.assert_array_equal(read_mot(path), [[1, 2, 3, 4, 5, 6, 1, 1, 0.5, -1]])
    write_mot(path, np.zeros((0, 10)))
    assert read_mot(path).shape == (0, 10)


def test_bad_files_and_rows_raise(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("1,2,3\n")
    with pytest.raises(ValueError, match="at least 6"):
        read_mot(path)
    path.write_text("1,2,a,4,5,6\n")
    with pytest.raises(ValueError, match="numbers"):
        read_mot(path)
    with pytest.raises(ValueError, match="path"):
        read_mot(tmp_path / "missing.txt")
    with pytest.raises(ValueError, match="rows must be"):
        write_mot(path, np.zeros((2, 5)))
    with pytest.raises(ValueError, match="integers"):
        write_mot(path, [[1.5, 1, 0, 0, 1, 1]])


def test_mot_rows_from_tracks():
    tracks = [Track(track_id=4, box=np.array([1.0, 2.0, 3.0, 4.0]), score=0.9, detection_index=0, age=3, hits=3,
                    filtered_box=np.zeros(4))]
    np.testing.assert_array_equal(mot_rows(5, tracks), [[5, 4, 1, 2, 3, 4, 0.9, -1, -1, -1]])
    assert mot_rows(1, []).shape == (0, 10)
    with pytest.raises(ValueError, match="frame_index_1based"):
        mot_rows(0, tracks)


def test_identical_tracks_score_perfectly():
    gt = two_walkers()
    scores = mot_metrics(gt, gt.copy())
    assert scores["mota"] == 1.0 and scores["idf1"] == 1.0 and scores["motp"] == pytest.approx(0.0)
    assert scores["num_switches"] == 0 and scores["num_false_positives"] == 0 and scores["num_misses"] == 0
    assert scores["num_objects"] == 40 and scores["mostly_tracked"] == 2
    assert all(type(v) in (float, int) for v in scores.values())


def test_id_switches_are_counted():
    gt = two_walkers()
    relabelled = gt.copy()
    relabelled[(relabelled[:, 0] > 10) & (relabelled[:, 1] == 1), 1] = 9  # person 1 gets a new id mid-sequence
    scores = mot_metrics(gt, relabelled)
    assert scores["num_switches"] == 1
    assert scores["mota"] == pytest.approx(1 - 1 / 40)
    assert scores["idf1"] < 1.0
    swapped = gt.copy()
    late = swapped[:, 0] > 10
    swapped[late, 1] = 3 - swapped[late, 1]  # the two ids swap
    assert mot_metrics(gt, swapped)["num_switches"] == 2


def test_misses_false_positives_and_the_iou_threshold():
    gt = two_walkers(5)
    hyp = gt[gt[:, 1] == 1].copy()  # person 2 never found
    hyp = np.concatenate([hyp, [[3, 5, 900.0, 900.0, 10.0, 10.0, 1, -1, -1, -1]]])  # a box on nothing
    scores = mot_metrics(gt, hyp)
    assert scores["num_misses"] == 5 and scores["num_false_positives"] == 1
    shifted = gt.copy()
    shifted[:, 2] += 10.0  # 40 px wide boxes moved 10 px: IoU 30 / 50 = 0.6
    assert mot_metrics(gt, shifted, iou_threshold=0.5)["mota"] == 1.0
    assert mot_metrics(gt, shifted, iou_threshold=0.5)["motp"] == pytest.approx(0.4)
    assert mot_metrics(gt, shifted, iou_threshold=0.7)["num_misses"] == 10
    with pytest.raises(ValueError, match="iou_threshold"):
        mot_metrics(gt, gt, iou_threshold=0.0)


def test_tracker_output_scores_perfectly_on_clean_detections(tmp_path):
    gt = two_walkers(30)
    tracker = ByteTracker()
    rows = []
    for frame in range(1, 31):
        g = gt[gt[:, 0] == frame][::-1]  # the detector's order is not the ids'
        rows.append(mot_rows(frame, tracker.update(g[:, 2:6], np.full(len(g), 0.9))))
    write_mot(tmp_path / "hyp.txt", np.concatenate(rows))
    scores = mot_metrics(gt, read_mot(tmp_path / "hyp.txt"))
    assert scores["mota"] == 1.0 and scores["idf1"] == 1.0 and scores["num_switches"] == 0
