"""`lowres-hps body info | warmup | mesh` through the CLI router."""
from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh

from lowres_hps.cli import main


def test_info_anny(capsys):
    assert main(["body", "info"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"] == "anny"
    assert (report["num_vertices"], report["num_faces"], report["num_joints"]) == (13718, 27420, 104)
    assert report["pose_vector_size"] == 126 and report["shape_size"] == 6
    assert report["rotation_joints"][0] == "root" and len(report["rotation_joints"]) == 20
    assert report["keypoint_sets"] == ["anny104", "coco23"]
    assert report["keypoint_coverage"]["coco17"] == "17/17" and report["keypoint_coverage"]["lsp14"] == "12/14"


def test_info_smpl_without_files(capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("SMPL_MODEL_DIR", raising=False)
    assert main(["body", "info", "--model", "smpl", "--model-path", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert "https://smpl.is.tue.mpg.de" in error and "SMPL_MODEL_DIR" in error


def test_warmup(capsys):
    assert main(["body", "warmup"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("anny cache ") and " s: " in out and "MB" in out


@pytest.mark.parametrize("suffix", [".obj", ".ply", ".glb"])
def test_mesh_rest(tmp_path, capsys, suffix):
    path = tmp_path / f"rest{suffix}"
    assert main(["body", "mesh", "--out", str(path)]) == 0
    assert str(path) in capsys.readouterr().out
    mesh = trimesh.load(path, force="mesh", process=False)
    assert len(mesh.vertices) == 13718 and len(mesh.faces) == 27420
    height = np.ptp(mesh.vertices[:, 1])
    assert 1.2 < height < 2.1  # canonical frame: Y up, metres


def test_mesh_random_is_seeded(tmp_path):
    paths = [tmp_path / f"{name}.obj" for name in ("a", "b", "c", "rest")]
    for path, seed in zip(paths[:3], (0, 0, 1)):
        assert main(["body", "mesh", "--random", "--seed", str(seed), "--out", str(path)]) == 0
    assert main(["body", "mesh", "--out", str(paths[3])]) == 0
    a, b, c, rest = (trimesh.load(p, process=False).vertices for p in paths)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c) and not np.allclose(a, rest)


def test_mesh_bad_suffix(tmp_path, capsys):
    assert main(["body", "mesh", "--out", str(tmp_path / "mesh.stl")]) == 2
    assert ".obj" in capsys.readouterr().err
