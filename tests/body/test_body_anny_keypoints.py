"""Keypoint-only forward: the full forward's joints and COCO keypoints without the mesh.

Anny tests skip when the ``anny`` package or its built cache is missing (building it takes ~70 s and
~790 MB); the folded-skinning test on made-up data always runs.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import roma
import torch

from lowres_hps.body import ANNY_POSE_SPEC, BodyParams
from lowres_hps.body.keypoint_skinning import RegressedKeypointSkinning

SPEC = ANNY_POSE_SPEC


def _skip_without_anny() -> None:
    pytest.importorskip("anny")
    cache = Path(os.environ.get("ANNY_CACHE_DIR", Path.home() / ".cache" / "anny"))
    if not any(cache.glob("v*/*.safetensors")):
        pytest.skip(f"Anny cache not built in {cache} (set ANNY_CACHE_DIR)")


@pytest.fixture(scope="module")
def body32(request):
    _skip_without_anny()
    return request.getfixturevalue("anny_body")  # the session's float32 model


@pytest.fixture(scope="module")
def body64():
    _skip_without_anny()
    from lowres_hps.body import load_body_model

    return load_body_model("anny", dtype=torch.float64)


def random_vector(batch: int, seed: int, dtype=torch.float64) -> torch.Tensor:
    """(B, D) pose vectors: uniformly random joint rotations, phenotypes uniform in [0, 1]."""
    generator = torch.Generator().manual_seed(seed)
    quaternions = torch.randn(batch, SPEC.num_joints, 4, generator=generator, dtype=torch.float64)
    rotations = roma.unitquat_to_rotmat(quaternions / quaternions.norm(dim=-1, keepdim=True))
    shape = torch.rand(batch, SPEC.shape_size, generator=generator, dtype=torch.float64)
    return SPEC.join(rotations, shape).to(dtype)


def random_translation(batch: int, seed: int, dtype=torch.float64) -> torch.Tensor:
    """(B, 3) translations a camera sees: within 1 m sideways, 2-8 m deep."""
    generator = torch.Generator().manual_seed(seed)
    translation = torch.rand(batch, 3, generator=generator, dtype=torch.float64) * torch.tensor([2.0, 2.0, 6.0])
    return (translation + torch.tensor([-1.0, -1.0, 2.0], dtype=torch.float64)).to(dtype)


def _both(body, vector, translation=None):
    with torch.no_grad():
        return body.forward_vector(vector, translation), body.forward_vector(vector, translation, keypoints_only=True)


def test_folded_skinning_equals_skinning_then_regressing():
    """Made-up mesh: skin every vertex, regress, and compare with the folded sums."""
    generator = torch.Generator().manual_seed(0)
    vertices, bones, keypoints, coefficients, batch = 40, 6, 3, 4, 2
    options = dict(generator=generator, dtype=torch.float64)
    # Keypoint k regresses from the vertices v = k (mod 3), each bound to bones v % 3 and 3 + v % 3.
    vertex = torch.arange(vertices)
    regression = torch.rand(keypoints, vertices, **options) * (vertex % keypoints == torch.arange(keypoints)[:, None])
    regression /= regression.sum(1, keepdim=True)
    skinning = torch.zeros(vertices, bones, dtype=torch.float64)
    share = torch.rand(vertices, **options)
    skinning[vertex, vertex % 3], skinning[vertex, 3 + vertex % 3] = share, 1 - share
    template = torch.randn(vertices, 3, **options)
    blendshapes = 0.1 * torch.randn(coefficients, vertices, 3, **options)
    transforms = roma.Rigid(roma.random_rotmat((batch, bones), dtype=torch.float64),
                            torch.randn(batch, bones, 3, **options)).to_homogeneous()
    coeffs = torch.rand(batch, coefficients, **options)

    rest = template + torch.einsum("bc,cvd->bvd", coeffs, blendshapes)
    blended = torch.einsum("vj,bjxy->bvxy", skinning, transforms[:, :, :3, :])
    skinned = (blended[..., :3] @ rest[..., None])[..., 0] + blended[..., 3]
    expected = regression @ skinned

    folded = RegressedKeypointSkinning(regression, skinning, template, blendshapes)
    assert folded.num_pairs == 2 * keypoints  # only the (keypoint, bone) pairs that share a vertex
    torch.testing.assert_close(folded(transforms, coeffs), expected, atol=1e-12, rtol=0)
    torch.testing.assert_close(folded.regression_sums, torch.ones(keypoints, dtype=torch.float64))
    assert not any(folded.state_dict())


@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("translated", [False, True])
def test_float64_keypoints_match_the_full_forward(body64, batch, translated):
    vector = random_vector(batch, seed=batch)
    translation = random_translation(batch, seed=batch) if translated else None
    full, fast = _both(body64, vector, translation)
    assert fast.vertices is None and full.vertices is not None
    assert set(fast.keypoint_sets) == set(full.keypoint_sets) and fast.joint_convention == full.joint_convention
    assert fast.faces is body64.faces
    # The joints take Anny's own path (no mesh needed), so they are the full forward's.
    torch.testing.assert_close(fast.joints, full.joints, atol=1e-12, rtol=0)
    for name, points in full.keypoint_sets.items():
        torch.testing.assert_close(fast.keypoint_sets[name], points, atol=1e-9, rtol=0)
    coco, mask = fast.keypoints("coco17")
    torch.testing.assert_close(coco, full.keypoints("coco17")[0], atol=1e-9, rtol=0)
    assert mask.tolist() == [1.0] * 17


@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("translated", [False, True])
def test_float32_keypoints_match(body32, body64, batch, translated):
    vector = random_vector(batch, seed=10 + batch)
    translation = random_translation(batch, seed=10 + batch) if translated else None
    reference = _both(body64, vector, translation)[0]
    full, fast = _both(body32, vector.float(), None if translation is None else translation.float())
    assert fast.vertices is None and fast.keypoint_sets["coco23"].dtype == torch.float32
    torch.testing.assert_close(fast.joints, full.joints, atol=1e-6, rtol=0)
    # Against float64, the folded sums stay within ~1e-6 m; the full float32 forward does not always: its
    # regressor sums 13718 float32 vertices (up to ~1e-4 m off at batch 1 with a translation of a few m).
    for name, points in reference.keypoint_sets.items():
        torch.testing.assert_close(fast.keypoint_sets[name].double(), points, atol=1e-5, rtol=0)
    # Float32 round-off of a 13718-term sum (see test_body_anny.float32_sum_tolerance); sub-millimetre.
    magnitude = float(reference.keypoint_sets["coco23"].abs().max())
    atol = 1e-5 + 8 * math.sqrt(body32.num_vertices) * torch.finfo(torch.float32).eps * magnitude
    torch.testing.assert_close(fast.keypoint_sets["coco23"], full.keypoint_sets["coco23"], atol=atol, rtol=0)


def test_gradients_match_the_full_forward(body64):
    vector, translation = random_vector(3, seed=20), random_translation(3, seed=20)
    generator = torch.Generator().manual_seed(21)
    weights = {n: torch.randn(3, len(p[0]), 3, generator=generator, dtype=torch.float64)
               for n, p in _both(body64, vector[:1])[0].keypoint_sets.items()}
    grads = []
    for keypoints_only in (False, True):
        v, t = vector.clone().requires_grad_(True), translation.clone().requires_grad_(True)
        output = body64.forward_vector(v, t, keypoints_only=keypoints_only)
        sum((output.keypoint_sets[n] * w).sum() for n, w in weights.items()).backward()
        grads.append((v.grad, t.grad))
    (full_v, full_t), (fast_v, fast_t) = grads
    assert (full_v.abs() > 0).all()  # every rotation entry and phenotype moves some keypoint
    torch.testing.assert_close(fast_v, full_v, atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(fast_t, full_t, atol=1e-9, rtol=1e-9)


def test_gradcheck(body64):
    # Batch 1: every entry costs two forwards; test_gradients_match_the_full_forward covers batches.
    vector, translation = random_vector(1, seed=30), random_translation(1, seed=30)

    def keypoints(v, t):
        return body64.forward_vector(v, t, keypoints_only=True).keypoints("coco17")[0]

    assert torch.autograd.gradcheck(keypoints, (vector.requires_grad_(), translation.requires_grad_()))


def test_shape_terms_are_kept_while_the_shape_stays(body64):
    # A fit runs the body on one shape with many poses: the shape's part of the forward is computed once.
    vector = random_vector(3, seed=50)
    moved = SPEC.join(SPEC.split(random_vector(3, seed=51))[0], SPEC.split(vector)[1])  # new poses, same shapes

    def keypoints(v, fresh=False):
        if fresh:
            body64._shape_cache = None
        with torch.no_grad():
            return body64.forward_vector(v, keypoints_only=True).keypoint_sets["coco23"]

    keypoints(vector, fresh=True)
    kept = body64._shape_cache
    assert kept is not None
    reused = keypoints(moved)
    assert body64._shape_cache is kept  # the same shapes: nothing recomputed
    torch.testing.assert_close(reused, keypoints(moved, fresh=True), rtol=0, atol=0)
    keypoints(random_vector(3, seed=52))
    assert not torch.equal(body64._shape_cache[0][0], kept[0][0])  # new shapes replace the kept ones
    kept = body64._shape_cache
    v = random_vector(3, seed=52).requires_grad_(True)  # a shape that needs gradients is never cached
    body64.forward_vector(v, keypoints_only=True).keypoint_sets["coco23"].sum().backward()
    assert body64._shape_cache is kept and (v.grad[:, -SPEC.shape_size:].abs() > 0).any()
    body64._shape_cache = None
    with torch.inference_mode():  # inference tensors could not be saved for a later backward
        body64.forward_vector(vector, keypoints_only=True)
    assert body64._shape_cache is None


def test_native_params_with_shared_shape(body32):
    params = body32.pose_vector_to_native(random_vector(3, seed=40, dtype=torch.float32))
    shared = BodyParams(pose=params.pose, shape=torch.full((1, SPEC.shape_size), 0.3))
    with torch.no_grad():
        full, fast = body32(shared), body32(shared, keypoints_only=True)
    assert fast.vertices is None
    torch.testing.assert_close(fast.keypoint_sets["coco23"], full.keypoint_sets["coco23"], atol=1e-5, rtol=0)
    torch.testing.assert_close(fast.joints, full.joints)
    with pytest.raises(ValueError, match="shape"):
        body32(BodyParams(pose=params.pose, shape=torch.zeros(2, SPEC.shape_size)), keypoints_only=True)


def test_default_forward_keeps_the_mesh(body32):
    vector = random_vector(2, seed=50, dtype=torch.float32)
    with torch.no_grad():
        default, explicit = body32.forward_vector(vector), body32.forward_vector(vector, keypoints_only=False)
    assert default.vertices.shape == (2, body32.num_vertices, 3)
    assert torch.equal(default.vertices, explicit.vertices)
    assert all(torch.equal(default.keypoint_sets[n], explicit.keypoint_sets[n]) for n in default.keypoint_sets)


def test_dual_quaternion_skinning_drops_the_mesh_after_skinning_it():
    """DQS is not linear in the bone transforms, so its keypoints still come from the skinned mesh."""
    _skip_without_anny()
    from lowres_hps.body import load_body_model

    body = load_body_model("anny", skinning_method="dqs")
    full, fast = _both(body, random_vector(2, seed=60, dtype=torch.float32))
    assert fast.vertices is None
    assert all(torch.equal(fast.keypoint_sets[n], full.keypoint_sets[n]) for n in full.keypoint_sets)
