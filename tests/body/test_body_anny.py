"""Anny body model: sizes, dtypes, the canonical frame, rest pose, pose vector, gradients, keypoints."""
from __future__ import annotations

import math

import pytest
import roma
import torch

from lowres_hps.body import ANNY_POSE_SPEC, BodyParams, load_body_model, sample_random_pose
from lowres_hps.body.keypoints import ANNY104, COCO17, COCO23

SPEC = ANNY_POSE_SPEC


def _coco(output, name: str) -> torch.Tensor:
    keypoints, _ = output.keypoints("coco23")
    return keypoints[:, COCO23.index(name)]


def _with_rotation(vector: torch.Tensor, joint: str, rotvec) -> torch.Tensor:
    rotations, shape = SPEC.split(vector)
    rotations = rotations.clone()
    rotations[:, SPEC.joint_names.index(joint)] = roma.rotvec_to_rotmat(torch.tensor(rotvec, dtype=vector.dtype))
    return SPEC.join(rotations, shape)


@pytest.fixture(scope="module")
def rest(anny_body):
    with torch.no_grad():
        return anny_body.forward_vector(SPEC.rest_vector(2))


def test_sizes(anny_body):
    assert anny_body.name == "anny"
    assert anny_body.num_vertices == 13718
    assert anny_body.num_faces == 27420
    assert anny_body.num_joints == 104
    assert anny_body.native_convention is ANNY104
    assert anny_body.pose_spec is SPEC
    assert anny_body.faces.dtype == torch.long
    assert int(anny_body.faces.min()) == 0 and int(anny_body.faces.max()) == 13717
    assert tuple(n if n != "head" else "head_anny" for n in anny_body.anny.bone_labels) == ANNY104.names
    # Model data stays out of network checkpoints (Anny keeps only its phenotype anchors there).
    assert sum(v.numel() for v in anny_body.state_dict().values()) < 100


def test_rest_output_shapes_and_dtypes(rest):
    assert rest.vertices.shape == (2, 13718, 3) and rest.vertices.dtype == torch.float32
    assert rest.joints.shape == (2, 104, 3) and rest.joints.dtype == torch.float32
    assert rest.faces.shape == (27420, 3)
    assert rest.joint_convention == "anny104"
    assert set(rest.keypoint_sets) == {"anny104", "coco23"}
    assert rest.keypoint_sets["coco23"].shape == (2, 23, 3) and rest.keypoint_sets["coco23"].dtype == torch.float32


def test_canonical_frame(rest):
    root = rest.joints[:, 0]
    torch.testing.assert_close(root, torch.zeros_like(root))  # root joint at the origin
    nose, left_ankle, right_ankle = _coco(rest, "nose"), _coco(rest, "left_ankle"), _coco(rest, "right_ankle")
    assert (nose[:, 1] > left_ankle[:, 1] + 1.0).all() and (nose[:, 1] > right_ankle[:, 1] + 1.0).all()  # +Y up
    assert (nose[:, 2] > root[:, 2] + 0.05).all()  # faces +Z
    assert (_coco(rest, "left_big_toe")[:, 2] > _coco(rest, "left_heel")[:, 2]).all()
    assert (_coco(rest, "left_shoulder")[:, 0] > 0.1).all() and (_coco(rest, "right_shoulder")[:, 0] < -0.1).all()
    height = rest.vertices[..., 1].amax(-1) - rest.vertices[..., 1].amin(-1)
    assert ((height > 1.2) & (height < 2.1)).all()  # metres


def test_rest_vector_is_annys_reference_pose(anny_body, rest):
    """The identity vector is Anny's local-ref identity (reference pose), rotated into the canonical frame."""
    with torch.no_grad():
        native = anny_body.anny(torch.eye(4).expand(1, 104, 4, 4), phenotype_kwargs=torch.full((1, 6), 0.5))
    expected = native["vertices"][0] @ torch.tensor([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])
    torch.testing.assert_close(rest.vertices[0], expected)


def float32_sum_tolerance(magnitude: float, terms: int) -> dict:
    """assert_close tolerance for float32 sums of ``terms`` products whose values reach ``magnitude``.

    Their round-off grows with both: about ``sqrt(terms) * eps * magnitude`` for the blocked SIMD sums of
    a matrix product, whose order differs between CPUs (1.2e-4 m at 5 m over Anny's 13718 vertices on an
    AVX-512 EPYC). Eight times that still fails on any real error (centimetres or more).
    """
    eps = torch.finfo(torch.float32).eps
    return dict(atol=1e-5 + 8 * math.sqrt(terms) * eps * magnitude, rtol=0)


def test_translation_moves_the_root(anny_body, rest):
    translation = torch.tensor([[0.5, -0.2, 3.0], [0.0, 0.1, 5.0]])
    with torch.no_grad():
        moved = anny_body.forward_vector(SPEC.rest_vector(2), translation)
    torch.testing.assert_close(moved.joints[:, 0], translation)
    torch.testing.assert_close(moved.vertices, rest.vertices + translation[:, None])
    # COCO keypoints come from a dense regressor over every vertex, each moved by the translation.
    expected = rest.keypoint_sets["coco23"] + translation[:, None]
    tolerance = float32_sum_tolerance(float(expected.abs().max()), anny_body.num_vertices)
    torch.testing.assert_close(moved.keypoint_sets["coco23"], expected, **tolerance)
    assert tolerance["atol"] < 1e-3  # still sub-millimetre


def test_root_rotation_rotates_about_the_root(anny_body, rest):
    rotation = roma.rotvec_to_rotmat(torch.tensor([0.3, -1.2, 0.5]))
    vector = _with_rotation(SPEC.rest_vector(1), "root", [0.3, -1.2, 0.5])
    with torch.no_grad():
        rotated = anny_body.forward_vector(vector)
    torch.testing.assert_close(rotated.vertices[0], rest.vertices[0] @ rotation.T, atol=1e-5, rtol=0)


def test_body_rotations_use_canonical_axes(anny_body, rest):
    """+x flexes the left knee: the left ankle goes back (-z) and up; the right leg does not move."""
    with torch.no_grad():
        bent = anny_body.forward_vector(_with_rotation(SPEC.rest_vector(1), "lowerleg01.L", [1.0, 0.0, 0.0]))
    before, after = _coco(rest, "left_ankle")[0], _coco(bent, "left_ankle")[0]
    assert after[2] < before[2] - 0.2 and after[1] > before[1] + 0.1
    knee = ANNY104.index("lowerleg01.L")
    torch.testing.assert_close(bent.joints[:, knee], rest.joints[:1, knee])
    torch.testing.assert_close(_coco(bent, "right_ankle"), _coco(rest, "right_ankle")[:1])


def test_native_params_and_shape_broadcast(anny_body):
    vector = sample_random_pose(3, torch.Generator().manual_seed(0))
    params = anny_body.pose_vector_to_native(vector)
    assert params.pose.shape == (3, 104, 4, 4) and params.shape.shape == (3, 6)
    torch.testing.assert_close(anny_body.native_to_pose_vector(params), vector, atol=1e-6, rtol=0)
    shared = BodyParams(pose=params.pose, shape=torch.full((1, 6), 0.5))
    with torch.no_grad():
        a = anny_body(shared)
        b = anny_body(BodyParams(pose=params.pose, shape=torch.full((3, 6), 0.5)))
    torch.testing.assert_close(a.vertices, b.vertices)
    assert anny_body.rest_params(2).pose.shape == (2, 104, 4, 4)


@pytest.mark.parametrize(
    "params, match",
    [
        (BodyParams(torch.eye(4).repeat(2, 24, 1, 1), torch.zeros(2, 6)), "pose"),
        (BodyParams(torch.eye(4).repeat(2, 104, 1, 1), torch.zeros(3, 6)), "shape"),
        (BodyParams(torch.eye(4).repeat(2, 104, 1, 1), torch.zeros(2, 10)), "shape"),
        (BodyParams(torch.eye(4).repeat(2, 104, 1, 1), torch.zeros(2, 6), torch.zeros(3)), "translation"),
    ],
)
def test_bad_params_raise(anny_body, params, match):
    with pytest.raises(ValueError, match=match):
        anny_body(params)
    with pytest.raises(ValueError, match="pose vector"):
        anny_body.forward_vector(torch.zeros(126))


def test_gradients_reach_every_vector_entry(anny_body):
    vector = sample_random_pose(2, torch.Generator().manual_seed(1), shape_ranges={n: (0.1, 0.9) for n in SPEC.shape_names})
    vector.requires_grad_(True)
    output = anny_body.forward_vector(vector)
    keypoints, _ = output.keypoints("coco17")
    weights = torch.randn(output.vertices.shape, generator=torch.Generator().manual_seed(2))
    (output.vertices * weights).sum().add(keypoints.square().sum()).backward()
    grad = vector.grad
    assert torch.isfinite(grad).all()
    per_joint = grad[:, : SPEC.rotation_size].reshape(2, SPEC.num_joints, 6).abs().sum(-1)
    assert (per_joint > 0).all()
    assert (grad[:, SPEC.rotation_size:].abs() > 0).all()  # every phenotype


def test_coco_keypoints_follow_annys_regressor_by_name(anny_body, rest):
    import anny

    regressor = anny.KeypointsRegressor.coco(anny_body.anny)  # Anny's own (different) foot order
    native = regressor({"vertices": rest.vertices})
    for k, label in enumerate(regressor.labels):
        torch.testing.assert_close(rest.keypoint_sets["coco23"][:, COCO23.index(label)], native[:, k])


def test_keypoints_in_other_conventions(rest):
    coco, mask = rest.keypoints("coco17")
    assert coco.shape == (2, 17, 3) and mask.tolist() == [1.0] * 17
    torch.testing.assert_close(coco, rest.keypoint_sets["coco23"][:, :17])
    lsp, mask = rest.keypoints("lsp14")
    assert mask.shape == (14,)
    missing = {n for n, m in zip(("right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
                                  "right_wrist", "right_elbow", "right_shoulder", "left_shoulder", "left_elbow",
                                  "left_wrist", "neck", "head_top"), mask.tolist()) if m == 0}
    assert missing == {"neck", "head_top"}
    assert (lsp[:, -2:] == 0).all()
    torch.testing.assert_close(lsp[:, 0], coco[:, COCO17.index("right_ankle")])
    native, mask = rest.keypoints("anny104")
    torch.testing.assert_close(native, rest.joints)


def test_random_poses_are_plausible(anny_body):
    vector = sample_random_pose(8, torch.Generator().manual_seed(5))
    with torch.no_grad():
        output = anny_body.forward_vector(vector)
    assert torch.isfinite(output.vertices).all()
    nose, ankles = _coco(output, "nose"), output.keypoints("coco17")[0][:, 15:17]
    assert (nose[:, 1] > ankles[..., 1].amax(-1) + 0.5).all()  # still standing upright


def test_float64_model_matches_float32(anny_body):
    body64 = load_body_model("anny", dtype=torch.float64)
    vector = sample_random_pose(2, torch.Generator().manual_seed(0), dtype=torch.float64)
    with torch.no_grad():
        out64 = body64.forward_vector(vector)
        out32 = anny_body.forward_vector(vector.float())
    assert out64.vertices.dtype == torch.float64 and out64.keypoint_sets["coco23"].dtype == torch.float64
    torch.testing.assert_close(out64.vertices.float(), out32.vertices, atol=2e-5, rtol=0)


def test_device(anny_body, device):
    body = anny_body if device.type == "cpu" else load_body_model("anny", device=device)
    output = body.forward_vector(SPEC.rest_vector(1, device=device))
    assert output.vertices.device.type == device.type and output.faces.device.type == device.type
    assert output.keypoints("coco17")[0].device.type == device.type


def test_anny_takes_no_model_path():
    with pytest.raises(ValueError, match="ANNY_CACHE_DIR"):
        load_body_model("anny", model_path="/somewhere")
    with pytest.raises(ValueError, match="unknown body model"):
        load_body_model("star")
