"""SMPL / SMPL-X through smplx, on small made-up model files that the tests write (no licensed data)."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import roma
import scipy.sparse
import torch

from lowres_hps.body import SMPL_POSE_SPEC, SMPLX_POSE_SPEC, BodyParams, load_body_model
from lowres_hps.body.keypoints import COCO23, SMPL24, SMPLX55
from lowres_hps.body.smpl_model import MODEL_DIR_ENV, find_smpl_model_file

SMPL_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]
SMPLX_PARENTS = SMPL_PARENTS[:22] + [15, 15, 15] + [
    parent for wrist in (20, 21) for first in range(25 + 15 * (wrist - 20), 40 + 15 * (wrist - 20), 3)
    for parent in (wrist, first, first + 1)
]
# smplx's vertex-keypoint ids, made small enough for the tiny meshes below.
TINY_VERTEX_IDS = {
    name: i for i, name in enumerate(
        ["nose", "reye", "leye", "rear", "lear", "LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel"]
        + [f"{side}{tip}" for side in "lr" for tip in ("thumb", "index", "middle", "ring", "pinky")]
    )
}


def _model_arrays(num_vertices: int, parents: list[int], num_shape: int, seed: int) -> dict:
    """Random model data in the layout of the SMPL-family files smplx reads."""
    rng = np.random.default_rng(seed)
    num_joints = len(parents)
    regressor = rng.random((num_joints, num_vertices))
    weights = rng.random((num_vertices, num_joints))
    kintree = np.stack([np.array(parents, dtype=np.int64) % 2**32, np.arange(num_joints)])  # root parent: uint32 -1
    return dict(
        v_template=rng.normal(scale=0.3, size=(num_vertices, 3)),
        shapedirs=rng.normal(scale=0.02, size=(num_vertices, 3, num_shape)),
        posedirs=rng.normal(scale=0.002, size=(num_vertices, 3, 9 * (num_joints - 1))),
        J_regressor=regressor / regressor.sum(1, keepdims=True),
        weights=weights / weights.sum(1, keepdims=True),
        kintree_table=kintree.astype(np.uint32),
        f=rng.integers(0, num_vertices, size=(2 * num_vertices, 3)).astype(np.uint32),
    )


def write_fake_smpl(path, num_vertices: int = 50, seed: int = 0) -> dict:
    data = _model_arrays(num_vertices, SMPL_PARENTS, 10, seed)
    data["J_regressor"] = scipy.sparse.csc_matrix(data["J_regressor"])  # as in the released pickles
    with open(path, "wb") as fh:
        pickle.dump(data, fh)
    return data


def write_fake_smplx(path, num_vertices: int = 60, seed: int = 0) -> dict:
    data = _model_arrays(num_vertices, SMPLX_PARENTS, 20, seed)
    rng = np.random.default_rng(seed + 1)
    data.update(
        hands_componentsl=rng.normal(size=(45, 45)), hands_componentsr=rng.normal(size=(45, 45)),
        hands_meanl=rng.normal(size=45), hands_meanr=rng.normal(size=45),
        lmk_faces_idx=np.arange(5), lmk_bary_coords=np.full((5, 3), 1 / 3),
    )
    np.savez(path, **data)
    return data


@pytest.fixture(scope="module")
def smpl_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("smpl_models")
    write_fake_smpl(folder / "SMPL_NEUTRAL.pkl")
    return folder


@pytest.fixture(scope="module")
def smpl_data(smpl_dir):
    with open(smpl_dir / "SMPL_NEUTRAL.pkl", "rb") as fh:
        return pickle.load(fh)


def _load_smpl(smpl_dir, **kwargs):
    return load_body_model("smpl", model_path=smpl_dir, vertex_ids=TINY_VERTEX_IDS, **kwargs)


@pytest.fixture(scope="module")
def smpl(smpl_dir):
    return _load_smpl(smpl_dir)


def test_missing_files_say_where_to_get_them(tmp_path, monkeypatch):
    monkeypatch.delenv(MODEL_DIR_ENV, raising=False)
    with pytest.raises(FileNotFoundError) as info:
        load_body_model("smpl")
    message = str(info.value)
    assert "https://smpl.is.tue.mpg.de" in message and MODEL_DIR_ENV in message and "--model-path" in message
    with pytest.raises(FileNotFoundError, match="https://smpl-x.is.tue.mpg.de") as info:
        load_body_model("smplx", model_path=tmp_path)
    assert str(tmp_path / "SMPLX_NEUTRAL.npz") in str(info.value)
    with pytest.raises(FileNotFoundError, match=MODEL_DIR_ENV):
        load_body_model("smpl", model_path=tmp_path / "nowhere.pkl")
    with pytest.raises(ValueError, match="gender"):
        find_smpl_model_file("smpl", tmp_path, gender="other")


def test_model_file_lookup(smpl_dir, tmp_path, monkeypatch):
    file = smpl_dir / "SMPL_NEUTRAL.pkl"
    assert find_smpl_model_file("smpl", file) == file
    assert find_smpl_model_file("smpl", smpl_dir) == file
    (tmp_path / "smpl").mkdir()
    (tmp_path / "smpl" / "SMPL_FEMALE.pkl").write_bytes(file.read_bytes())
    assert find_smpl_model_file("smpl", tmp_path, gender="female") == tmp_path / "smpl" / "SMPL_FEMALE.pkl"
    monkeypatch.setenv(MODEL_DIR_ENV, str(smpl_dir))
    assert find_smpl_model_file("smpl") == file
    assert load_body_model("smpl", vertex_ids=TINY_VERTEX_IDS).num_vertices == 50


def test_chumpy_pickles_get_a_clear_error(tmp_path):
    # A pickle that refers to chumpy, like the original SMPL releases.
    (tmp_path / "SMPL_NEUTRAL.pkl").write_bytes(b"\x80\x02cchumpy.ch\nCh\nq\x00.")
    with pytest.raises(ValueError, match="clean_ch"):
        load_body_model("smpl", model_path=tmp_path)


def test_sizes(smpl):
    assert smpl.name == "smpl"
    assert (smpl.num_vertices, smpl.num_faces, smpl.num_joints) == (50, 100, 24)
    assert smpl.native_convention is SMPL24 and smpl.pose_spec == SMPL_POSE_SPEC
    assert smpl.faces.dtype == torch.long


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rest_pose_matches_the_model_data(smpl_dir, smpl_data, dtype, device):
    body = _load_smpl(smpl_dir, dtype=dtype, device=device)
    output = body.forward_vector(body.pose_spec.rest_vector(2, dtype, device))
    assert output.vertices.shape == (2, 50, 3) and output.vertices.dtype == dtype
    assert output.joints.shape == (2, 24, 3) and output.joints.dtype == dtype
    assert output.vertices.device.type == device.type
    # Identity pose and zero betas: no blend shapes; the pelvis joint is moved to the origin.
    # smplx rounds the model data to float32 whatever the dtype, so the skinning weights sum to 1
    # only to float32 precision: float64 results agree to ~1e-8.
    template = torch.as_tensor(smpl_data["v_template"].astype(np.float32)).to(dtype=dtype, device=device)
    regressor = torch.as_tensor(smpl_data["J_regressor"].toarray().astype(np.float32)).to(dtype=dtype, device=device)
    joints = regressor @ template
    tol = dict(atol=1e-5, rtol=0) if dtype == torch.float32 else dict(atol=1e-7, rtol=0)
    torch.testing.assert_close(output.vertices[0], template - joints[0], **tol)
    torch.testing.assert_close(output.joints[0], joints - joints[0], **tol)
    coco = output.keypoint_sets["coco23"][0]
    torch.testing.assert_close(coco[COCO23.index("nose")], template[TINY_VERTEX_IDS["nose"]] - joints[0], **tol)
    torch.testing.assert_close(coco[COCO23.index("right_heel")], template[TINY_VERTEX_IDS["RHeel"]] - joints[0], **tol)
    torch.testing.assert_close(coco[COCO23.index("left_hip")], output.joints[0, SMPL24.index("left_hip_joint")])
    torch.testing.assert_close(coco[COCO23.index("right_wrist")], output.joints[0, SMPL24.index("right_wrist")])


def test_keypoint_conventions(smpl):
    output = smpl.forward_vector(SMPL_POSE_SPEC.rest_vector(1))
    coco, mask = output.keypoints("coco17")
    assert coco.shape == (1, 17, 3) and mask.sum() == 17
    h36m, mask = output.keypoints("h36m17")
    assert mask[0] == 1 and (h36m[:, 0] == 0).all()  # pelvis, at the origin
    assert smpl.keypoint_coverage("smpl24").all()


def test_translation_root_rotation_and_shape(smpl):
    vector = SMPL_POSE_SPEC.rest_vector(1)
    rest = smpl.forward_vector(vector)
    rotation = roma.rotvec_to_rotmat(torch.tensor([0.2, 1.0, -0.4]))
    rotations, shape = SMPL_POSE_SPEC.split(vector)
    rotations = rotations.clone()
    rotations[:, 0] = rotation
    turned = smpl.forward_vector(SMPL_POSE_SPEC.join(rotations, shape), translation=torch.tensor([[1.0, 2.0, 3.0]]))
    torch.testing.assert_close(turned.joints[0, 0], torch.tensor([1.0, 2.0, 3.0]))
    torch.testing.assert_close(turned.vertices[0] - torch.tensor([1.0, 2.0, 3.0]), rest.vertices[0] @ rotation.T, atol=1e-5, rtol=0)
    other_shape = smpl(BodyParams(smpl.rest_params(1).pose, torch.ones(1, 10)))
    assert not torch.allclose(other_shape.vertices, rest.vertices)


def test_keypoints_only_drops_the_vertices(smpl):
    noise = torch.randn(2, SMPL_POSE_SPEC.vector_size, generator=torch.Generator().manual_seed(0))
    vector = SMPL_POSE_SPEC.rest_vector(2) + 0.1 * noise
    translation = torch.tensor([[0.5, 0.0, 3.0], [0.0, 1.0, 5.0]])
    full, fast = smpl.forward_vector(vector, translation), smpl.forward_vector(vector, translation, keypoints_only=True)
    assert fast.vertices is None and full.vertices is not None
    assert set(fast.keypoint_sets) == set(full.keypoint_sets)
    for name, points in full.keypoint_sets.items():
        assert torch.equal(fast.keypoint_sets[name], points), name  # smplx skins the mesh either way


def test_native_round_trip(smpl):
    rotations = roma.random_rotmat((3, 24))
    params = BodyParams(pose=rotations, shape=torch.randn(3, 10))
    vector = smpl.native_to_pose_vector(params)
    back = smpl.pose_vector_to_native(vector)
    torch.testing.assert_close(back.pose, params.pose, atol=1e-6, rtol=0)
    torch.testing.assert_close(back.shape, params.shape)
    torch.testing.assert_close(smpl(back).vertices, smpl(params).vertices, atol=1e-5, rtol=0)


def test_gradcheck_through_the_model(smpl_dir):
    body = _load_smpl(smpl_dir, dtype=torch.float64)
    vector = SMPL_POSE_SPEC.rest_vector(1, torch.float64) + 0.1 * torch.randn(1, 154, dtype=torch.float64)

    def keypoints(v):
        return body.forward_vector(v).keypoints("coco17")[0]

    assert torch.autograd.gradcheck(keypoints, (vector.requires_grad_(),), fast_mode=True)


def test_smplx_fake_file(tmp_path, monkeypatch):
    import smplx.body_models

    # SMPL-X's vertex keypoint ids are fixed inside smplx; shrink them for the 60-vertex mesh.
    monkeypatch.setattr(smplx.body_models, "VERTEX_IDS", dict(smplx.body_models.VERTEX_IDS, smplx=TINY_VERTEX_IDS))
    data = write_fake_smplx(tmp_path / "SMPLX_NEUTRAL.npz")
    body = load_body_model("smplx", model_path=tmp_path)
    assert (body.name, body.num_vertices, body.num_joints) == ("smplx", 60, 55)
    assert body.native_convention is SMPLX55 and body.pose_spec == SMPLX_POSE_SPEC
    output = body.forward_vector(SMPLX_POSE_SPEC.rest_vector(2))
    assert output.joints.shape == (2, 55, 3) and output.joint_convention == "smplx55"
    joints = torch.as_tensor(data["J_regressor"] @ data["v_template"], dtype=torch.float32)
    torch.testing.assert_close(output.joints[0], joints - joints[0], atol=1e-5, rtol=0)
    nose = torch.as_tensor(data["v_template"][TINY_VERTEX_IDS["nose"]], dtype=torch.float32) - joints[0]
    torch.testing.assert_close(output.keypoints("coco17")[0][0, 0], nose, atol=1e-5, rtol=0)
