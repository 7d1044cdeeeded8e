"""Horizontal flip of pose vectors: the flipped vector poses the mirror image of the body (Anny measured,
SMPL exact on a mirror-symmetric made-up model), flipping twice is the identity, joint pairing tables."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import roma
import torch

from lowres_hps.body import (
    ANNY_POSE_SPEC,
    SMPL_POSE_SPEC,
    SMPLX_POSE_SPEC,
    RegressionPoseSpec,
    flip_joint_permutation,
    flip_pose_vector,
    load_body_model,
    merge_mirrored_pose_vectors,
    sample_random_pose,
    turn_round_pose_vector,
)
from lowres_hps.body.keypoints import ANNY104, COCO17, COCO23, SMPL24
from lowres_hps.body.smpl_model import find_smpl_model_file
from lowres_hps.geometry.rotations import rotation_6d_to_matrix

SPECS = [ANNY_POSE_SPEC, SMPL_POSE_SPEC, SMPLX_POSE_SPEC]
MIRROR = torch.tensor([-1.0, 1.0, 1.0])  # camera / canonical x reflected


def _names(spec, perm):
    return {spec.joint_names[i]: spec.joint_names[j] for i, j in enumerate(perm)}


def test_anny_pairing():
    perm = flip_joint_permutation(ANNY_POSE_SPEC)
    pairs = _names(ANNY_POSE_SPEC, perm)
    for side in ("clavicle", "upperarm01", "lowerarm01", "wrist", "upperleg01", "lowerleg01", "foot"):
        assert pairs[f"{side}.L"] == f"{side}.R" and pairs[f"{side}.R"] == f"{side}.L"
    for midline in ("root", "spine05", "spine03", "spine01", "neck01", "head"):
        assert pairs[midline] == midline
    # The same pairs as the native rig's (ANNY104 pairs bones by their .L/.R suffix).
    native = ANNY104.flip_permutation
    index = ANNY_POSE_SPEC.native_indices
    assert [native[index[i]] for i in range(len(perm))] == [index[j] for j in perm]


def test_smpl_pairing():
    perm = flip_joint_permutation(SMPL_POSE_SPEC)
    assert list(perm) == SMPL24.flip_permutation
    pairs = _names(SMPL_POSE_SPEC, perm)
    assert pairs["left_hip_joint"] == "right_hip_joint" and pairs["right_collar"] == "left_collar"
    assert pairs["left_hand"] == "right_hand" and pairs["right_foot"] == "left_foot"
    midline = [n for n, m in pairs.items() if n == m]
    assert midline == ["pelvis", "spine1", "spine2", "spine3", "neck", "head_smpl"]
    assert list(flip_joint_permutation(SMPLX_POSE_SPEC)) == list(perm[:22])


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.model)
def test_rotations_become_mirror_conjugates(spec):
    """Each rotation R turns into F R F at its mirror joint; the shape is kept."""
    generator = torch.Generator().manual_seed(0)
    rotations = roma.random_rotmat((3, spec.num_joints), dtype=torch.float64)
    shape = torch.rand((3, spec.shape_size), generator=generator, dtype=torch.float64)
    flipped = flip_pose_vector(spec.join(rotations, shape), spec)
    mirror = torch.diag(MIRROR.double())
    new_rotations, new_shape = spec.split(flipped)
    perm = list(flip_joint_permutation(spec))
    torch.testing.assert_close(new_rotations, (mirror @ rotations @ mirror)[:, perm])
    assert torch.equal(new_shape, shape)
    # Also for raw 6D vectors (network outputs) that are not orthonormal.
    raw = torch.randn((4, spec.vector_size), generator=generator, dtype=torch.float64)

    def rot6d(v):
        return rotation_6d_to_matrix(v[..., : spec.rotation_size].unflatten(-1, (spec.num_joints, 6)))

    torch.testing.assert_close(rot6d(flip_pose_vector(raw, spec)), (mirror @ rot6d(raw) @ mirror)[:, perm])


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.model)
@pytest.mark.parametrize("batch", [(), (3,), (2, 4)], ids=str)
def test_flipping_twice_is_the_identity(spec, batch):
    vector = torch.randn(batch + (spec.vector_size,), generator=torch.Generator().manual_seed(1))
    flipped = flip_pose_vector(vector, spec)
    assert flipped.shape == vector.shape and flipped.dtype == vector.dtype
    assert not torch.equal(flipped, vector)
    assert torch.equal(flip_pose_vector(flipped, spec), vector)


def _spec(*names: str) -> RegressionPoseSpec:
    return RegressionPoseSpec(model="toy", joint_names=names, joint_parts=names,
                              native_indices=tuple(range(len(names))), num_native_joints=len(names),
                              shape_names=(), rest_shape=())


def test_rest_pose_is_its_own_mirror_and_bad_inputs_fail():
    rest = ANNY_POSE_SPEC.rest_vector(2)
    assert torch.equal(flip_pose_vector(rest, ANNY_POSE_SPEC), rest)
    with pytest.raises(ValueError, match="126"):
        flip_pose_vector(torch.zeros(2, 125), ANNY_POSE_SPEC)
    # Unsided names are midline joints; both naming styles pair.
    assert flip_joint_permutation(_spec("root", "right_paw", "arm.R", "arm.L", "left_paw")) == (0, 4, 3, 2, 1)
    with pytest.raises(ValueError, match="no mirror joint"):
        flip_joint_permutation(_spec("root", "left_hand", "right_paw"))


# --- Anny: the flipped vector poses the mirror image -------------------------------------------


@pytest.fixture(scope="module")
def anny(request):
    """The session's Anny model; skipped without the anny package."""
    pytest.importorskip("anny")
    return request.getfixturevalue("anny_body")


@pytest.fixture(scope="module")
def anny_mirror_vertices(anny) -> torch.Tensor:
    """(V,) index of each Anny vertex's mirror vertex, from the template mesh (exactly symmetric)."""
    from scipy.spatial import cKDTree

    template = anny.anny.template_vertices.double().cpu().numpy()
    distance, index = cKDTree(template).query(template * MIRROR.double().numpy())
    assert distance.max() < 1e-6  # an exact mirror pairing
    assert (index[index] == np.arange(len(index))).all()
    return torch.as_tensor(index)


def _mirror_errors_mm(body, vector, mirror_vertices):
    """Distances (mm) between the mirrored posed body of ``vector`` and the posed body of its flip."""
    with torch.no_grad():
        original = body.forward_vector(vector)
        flipped = body.forward_vector(flip_pose_vector(vector, body.pose_spec))
    mirror = MIRROR.to(vector.dtype)
    errors = {}
    if mirror_vertices is not None:
        errors["vertices"] = (original.vertices[:, mirror_vertices] * mirror - flipped.vertices).norm(dim=-1)
    joint_perm = body.native_convention.flip_permutation
    errors["joints"] = (original.joints[:, joint_perm] * mirror - flipped.joints).norm(dim=-1)
    for name in ("coco17", "coco23"):
        convention = COCO17 if name == "coco17" else COCO23
        a, _ = original.keypoints(name)
        b, _ = flipped.keypoints(name)
        errors[name] = (a[:, convention.flip_permutation] * mirror - b).norm(dim=-1)
    return {k: v * 1000 for k, v in errors.items()}


def test_anny_flip_is_the_mirror_image(anny, anny_mirror_vertices):
    """Random poses (any root orientation) and phenotypes: the flip's body is the mirrored body, to the
    millimetre. The residual is Anny's own asymmetry (its neck bones, see lowres_hps.body.flip)."""
    vector = sample_random_pose(24, torch.Generator().manual_seed(0), ANNY_POSE_SPEC, root_yaw_deg=180.0,
                                root_tilt_deg=40.0)
    errors = _mirror_errors_mm(anny, vector, anny_mirror_vertices)
    print("anny mirror error, mm (max / mean): " + ", ".join(f"{k} {float(v.max()):.2f} / {float(v.mean()):.3f}"
                                                          for k, v in errors.items()))
    assert errors["vertices"].max() < 3.0 and errors["vertices"].mean() < 0.3
    assert errors["coco17"].max() < 3.0 and errors["coco23"].max() < 3.0
    # Bone heads: the neck bones' heads are Anny's least symmetric points.
    neck = [ANNY104.index(n) for n in ("neck01", "neck02", "neck03")]
    others = [i for i in range(len(ANNY104)) if i not in neck]
    assert errors["joints"][:, others].max() < 3.0 and errors["joints"].max() < 8.0
    # Without the left/right swap (or without the flip) the bodies are centimetres apart.
    with torch.no_grad():
        original = anny.forward_vector(vector).vertices
        flipped = anny.forward_vector(flip_pose_vector(vector, ANNY_POSE_SPEC)).vertices
    assert (original * MIRROR - flipped).norm(dim=-1).max() > 0.05
    assert (original[:, anny_mirror_vertices] - flipped).norm(dim=-1).max() > 0.05


def test_anny_turned_round_is_the_depth_reflection_with_left_and_right_exchanged(anny):
    """The body seen the other way round: relative to the hips, its COCO keypoints are the original's with z
    negated and left and right swapped (to the flip's millimetre), it faces the other way, and turning round twice
    gives the original back."""
    vector = sample_random_pose(16, torch.Generator().manual_seed(1), ANNY_POSE_SPEC, root_yaw_deg=180.0,
                                root_tilt_deg=30.0)
    turned = turn_round_pose_vector(vector, ANNY_POSE_SPEC)
    with torch.no_grad():
        a, _ = anny.forward_vector(vector).keypoints("coco17")
        b, _ = anny.forward_vector(turned).keypoints("coco17")
    hips = [COCO17.index("left_hip"), COCO17.index("right_hip")]
    a, b = a - a[:, hips].mean(1, keepdim=True), b - b[:, hips].mean(1, keepdim=True)
    depth = torch.tensor([1.0, 1.0, -1.0])
    assert (a[:, COCO17.flip_permutation] * depth - b).norm(dim=-1).max() < 3e-3
    assert (a - b).norm(dim=-1).max() > 0.05  # not the same body
    torch.testing.assert_close(turn_round_pose_vector(turned, ANNY_POSE_SPEC), vector)


# --- SMPL: exact on a mirror-symmetric made-up model; measured on the real one when present ------

SMPL_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]


def _symmetric_smpl(path, half: int = 30, midline: int = 6, seed: int = 0):
    """A made-up SMPL file whose template, joint regressor, skinning weights, shape and pose blend shapes
    are mirror symmetric; returns its smplx vertex ids and each vertex's mirror vertex."""
    rng = np.random.default_rng(seed)
    side = rng.normal(scale=0.3, size=(half, 3))
    side[:, 0] = np.abs(side[:, 0]) + 0.05
    centre = rng.normal(scale=0.3, size=(midline, 3))
    centre[:, 0] = 0.0
    vertices = np.concatenate([side, side * [-1, 1, 1], centre])
    num = len(vertices)
    mirror_v = np.concatenate([np.arange(half, 2 * half), np.arange(half), np.arange(2 * half, num)])
    mirror_j = np.array(SMPL24.flip_permutation)
    f = np.array([-1.0, 1.0, 1.0])
    signs = np.outer(f, f).reshape(9)  # F R F on the 9 entries of R - I

    def sym(a, rows, cols):  # (a + a mirrored) / 2: symmetric by construction
        return (a + a[np.ix_(rows, cols)]) / 2

    regressor = sym(rng.random((24, num)), mirror_j, mirror_v)
    weights = sym(rng.random((num, 24)), mirror_v, mirror_j)
    shapedirs = rng.normal(scale=0.02, size=(num, 3, 10))
    shapedirs = (shapedirs + f[None, :, None] * shapedirs[mirror_v]) / 2
    posedirs = rng.normal(scale=0.01, size=(num, 3, 23, 9))
    mirrored = f[None, :, None, None] * posedirs[mirror_v][:, :, mirror_j[1:] - 1] * signs
    posedirs = ((posedirs + mirrored) / 2).reshape(num, 3, 207)
    kintree = np.stack([np.array(SMPL_PARENTS, dtype=np.int64) % 2**32, np.arange(24)]).astype(np.uint32)
    data = dict(v_template=vertices, shapedirs=shapedirs, posedirs=posedirs,
                J_regressor=regressor / regressor.sum(1, keepdims=True),
                weights=weights / weights.sum(1, keepdims=True), kintree_table=kintree,
                f=rng.integers(0, num, size=(2 * num, 3)).astype(np.uint32))
    with open(path, "wb") as fh:
        pickle.dump(data, fh)
    # smplx's vertex keypoints: the nose on the midline, left points the mirrors of the right ones.
    fingers = [f"r{t}" for t in ("thumb", "index", "middle", "ring", "pinky")]
    names = ["reye", "rear", "RBigToe", "RSmallToe", "RHeel"] + fingers
    left = {"reye": "leye", "rear": "lear", "RBigToe": "LBigToe", "RSmallToe": "LSmallToe", "RHeel": "LHeel"}
    ids = {"nose": 2 * half}
    for i, name in enumerate(names):
        ids[name] = half + i  # a right-side vertex (x < 0)
        ids[left.get(name, "l" + name[1:])] = i
    return ids, torch.as_tensor(mirror_v)


def test_smpl_flip_is_exact_on_a_symmetric_model(tmp_path):
    pytest.importorskip("smplx")
    ids, mirror_vertices = _symmetric_smpl(tmp_path / "SMPL_NEUTRAL.pkl")
    body = load_body_model("smpl", model_path=tmp_path, vertex_ids=ids, dtype=torch.float64)
    generator = torch.Generator().manual_seed(0)
    rotations = roma.random_rotmat((6, 24), dtype=torch.float64)  # any rotations: the model is exactly symmetric
    betas = torch.randn((6, 10), generator=generator, dtype=torch.float64)
    errors = _mirror_errors_mm(body, SMPL_POSE_SPEC.join(rotations, betas), mirror_vertices)
    for name, error in errors.items():
        assert error.max() < 1e-6, name
    # The made-up model is not trivially symmetric: an unflipped vector is far from the mirror image.
    with torch.no_grad():
        vertices = body.forward_vector(SMPL_POSE_SPEC.join(rotations, betas)).vertices
    assert (vertices[:, mirror_vertices] * MIRROR.double() - vertices).norm(dim=-1).max() > 0.05


def test_smpl_flip_on_the_real_model():
    """Measured on the licensed SMPL model when $SMPL_MODEL_DIR has it (usually not: skipped)."""
    try:
        find_smpl_model_file("smpl")
    except FileNotFoundError:
        pytest.skip("SMPL model files not available ($SMPL_MODEL_DIR)")
    body = load_body_model("smpl")
    vector = sample_random_pose(16, torch.Generator().manual_seed(0), SMPL_POSE_SPEC, root_yaw_deg=180.0)
    errors = _mirror_errors_mm(body, vector, None)
    print("smpl mirror error, mm (max): " + ", ".join(f"{k} {float(v.max()):.2f}" for k, v in errors.items()))
    assert errors["joints"].max() < 20.0 and errors["coco17"].max() < 20.0


@pytest.mark.parametrize("spec", [ANNY_POSE_SPEC, SMPL_POSE_SPEC])
def test_merging_a_body_with_its_own_mirror_gives_it_back(spec):
    vector = sample_random_pose(4, torch.Generator().manual_seed(3), spec, root_yaw_deg=90.0)
    merged = merge_mirrored_pose_vectors(vector, flip_pose_vector(vector, spec), spec)
    rotations, shape = spec.split(vector)
    merged_rotations, merged_shape = spec.split(merged)
    torch.testing.assert_close(merged_rotations, rotations, atol=1e-5, rtol=0)
    torch.testing.assert_close(merged_shape, shape)


def test_merged_rotations_are_the_midpoints_and_shapes_the_means():
    spec = ANNY_POSE_SPEC
    first, second = sample_random_pose(6, torch.Generator().manual_seed(5), spec, root_yaw_deg=90.0,
                                       dtype=torch.float64).chunk(2)
    merged = merge_mirrored_pose_vectors(first, flip_pose_vector(second, spec), spec)
    r1, s1 = spec.split(first)
    r2, s2 = spec.split(second)
    midpoint = roma.rotvec_slerp(roma.rotmat_to_rotvec(r1), roma.rotmat_to_rotvec(r2), torch.tensor([0.5], dtype=r1.dtype))[0]
    rotations, shape = spec.split(merged)
    torch.testing.assert_close(rotations, roma.rotvec_to_rotmat(midpoint), atol=1e-9, rtol=0)
    torch.testing.assert_close(shape, 0.5 * (s1 + s2))
    with pytest.raises(ValueError, match="same shape"):
        merge_mirrored_pose_vectors(first, second[:1], spec)


def test_merge_gradcheck():
    spec = SMPL_POSE_SPEC
    first, second = sample_random_pose(2, torch.Generator().manual_seed(7), spec, dtype=torch.float64).chunk(2)
    first.requires_grad_(True)
    second.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: merge_mirrored_pose_vectors(a, b, spec), (first, second))
