"""Keypoint conventions and name-based mappings (lowres_hps.body.keypoints)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lowres_hps.body.keypoints import (
    ANNY104,
    ANNY104_PARENTS,
    COCO17,
    COCO23,
    CONVENTIONS,
    LSP14,
    SMPL24,
    SMPLX55,
    KeypointConvention,
    get_convention,
    get_mapping,
    map_keypoints,
    register_convention,
    ground_facing,
    torso_facing,
)


@pytest.mark.parametrize("name", sorted(CONVENTIONS))
def test_conventions_are_consistent(name):
    convention = CONVENTIONS[name]
    assert convention.name == name
    assert len(set(convention.names)) == len(convention)
    for a, b in convention.skeleton:
        assert 0 <= a < len(convention) and 0 <= b < len(convention) and a != b
    permutation = convention.flip_permutation
    assert sorted(permutation) == list(range(len(convention)))
    assert [permutation[i] for i in permutation] == list(range(len(convention)))  # an involution
    for a, b in convention.flip_pairs:
        left, right = convention.names[a], convention.names[b]
        assert left.replace("left_", "right_").replace(".L", ".R") == right


def test_flip_pairs_of_both_naming_styles():
    assert (COCO17.index("left_eye"), COCO17.index("right_eye")) in COCO17.flip_pairs
    assert (ANNY104.index("wrist.L"), ANNY104.index("wrist.R")) in ANNY104.flip_pairs
    assert len(ANNY104.flip_pairs) == 47  # everything but the root, spine, neck and head bones
    assert len(COCO23.flip_pairs) == 11


def test_body_model_conventions():
    assert len(ANNY104) == 104 and len(ANNY104_PARENTS) == 104
    assert len(ANNY104.skeleton) == 103  # one bone -> parent link per non-root bone
    assert all(ANNY104_PARENTS[c] == p for p, c in ANNY104.skeleton)
    assert "head" not in ANNY104.names  # the skull-base bone is not the H36M head point
    assert SMPLX55.names[:22] == SMPL24.names[:22] and len(SMPLX55) == 55
    assert COCO23.names[:17] == COCO17.names


def test_get_convention():
    assert get_convention("COCO17") is COCO17
    assert get_convention(LSP14) is LSP14
    with pytest.raises(KeyError, match="unknown keypoint convention"):
        get_convention("nope")


def test_mapping_preserves_names_and_marks_missing():
    mapping = get_mapping("coco17", "lsp14")
    assert mapping.missing == ["neck", "head_top"]
    for target_index, (source_index, valid) in enumerate(zip(mapping.source_index, mapping.valid)):
        if valid:
            assert COCO17.names[source_index] == LSP14.names[target_index]
    identity = get_mapping("coco23", "coco23")
    assert identity.valid.all() and identity.source_index.tolist() == list(range(23))
    # SMPL's hip joints are not COCO hips: named differently, so not mapped.
    assert set(get_mapping("smpl24", "coco17").missing) == {
        "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_hip", "right_hip"}


def test_map_keypoints_numpy_and_torch_agree():
    rng = np.random.default_rng(0)
    keypoints = rng.normal(size=(2, 17, 3))
    visibility = (rng.random((2, 17)) > 0.3).astype(np.float64)
    mapping = get_mapping("coco17", "lsp14")
    mapped, mask = map_keypoints(keypoints, mapping, visibility)
    mapped_t, mask_t = mapping(torch.from_numpy(keypoints), torch.from_numpy(visibility))
    np.testing.assert_array_equal(mapped, mapped_t.numpy())
    np.testing.assert_array_equal(mask, mask_t.numpy())
    assert mapped.shape == (2, 14, 3) and mask.shape == (2, 14)
    assert (mapped[:, -2:] == 0).all() and (mask[:, -2:] == 0).all()
    left_wrist = LSP14.index("left_wrist")
    np.testing.assert_array_equal(mapped[:, left_wrist], keypoints[:, COCO17.index("left_wrist")])
    np.testing.assert_array_equal(mask[:, left_wrist], visibility[:, COCO17.index("left_wrist")])
    with pytest.raises(ValueError, match="coco17"):
        map_keypoints(keypoints[:, :16], mapping)


def test_register_convention():
    convention = KeypointConvention("test_body_pair", ("left_hand_tip", "right_hand_tip"))
    register_convention(convention)
    try:
        assert get_convention("test_body_pair") is convention
        assert convention.flip_pairs == ((0, 1),)
    finally:
        CONVENTIONS.pop("test_body_pair")
    with pytest.raises(ValueError, match="duplicate"):
        KeypointConvention("dup", ("a", "a"))


def test_torso_facing_points_out_of_the_chest_for_any_batch_shape():
    body = torch.zeros(17, 3, dtype=torch.float64)
    body[COCO17.index("left_shoulder")] = torch.tensor([0.2, 0.0, 5.0])  # facing the camera: left on the image right
    body[COCO17.index("right_shoulder")] = torch.tensor([-0.2, 0.0, 5.0])
    body[COCO17.index("left_hip")] = torch.tensor([0.1, 0.5, 5.0])
    body[COCO17.index("right_hip")] = torch.tensor([-0.1, 0.5, 5.0])
    torch.testing.assert_close(torso_facing(body), torch.tensor([0.0, 0.0, -1.0], dtype=torch.float64))
    turned = body @ torch.tensor([[-1.0, 0, 0], [0, 1, 0], [0, 0, -1]], dtype=torch.float64)  # 180 degrees about y
    batch = torch.stack([body, turned]).expand(3, 2, 17, 3)
    facing = torso_facing(batch)
    assert facing.shape == (3, 2, 3)
    torch.testing.assert_close(facing[:, 1], -facing[:, 0])
    torch.testing.assert_close(ground_facing(batch)[0, 0], torch.tensor([0.0, -1.0], dtype=torch.float64))
    lying = body[:, [0, 2, 1]]  # the chest up: no direction on the ground
    assert ground_facing(lying).abs().max() == 0
