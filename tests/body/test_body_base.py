"""BodyOutput keypoint gathering and the BodyModel helpers that need no real model."""
from __future__ import annotations

import torch

from lowres_hps.body.base import BodyOutput, merged_keypoint_mapping
from lowres_hps.body.keypoints import COCO17, COCO23, H36M17, SMPL24


def _output(dtype=torch.float32) -> BodyOutput:
    smpl = torch.arange(2 * 24 * 3, dtype=dtype).reshape(2, 24, 3)
    coco = -torch.arange(2 * 23 * 3, dtype=dtype).reshape(2, 23, 3) - 1
    return BodyOutput(
        vertices=torch.zeros(2, 5, 3, dtype=dtype), faces=torch.zeros(1, 3, dtype=torch.long),
        joints=smpl, joint_convention="smpl24", keypoint_sets={"smpl24": smpl, "coco23": coco},
    )


def test_merged_mapping_takes_each_joint_from_the_first_source():
    source, index, valid = merged_keypoint_mapping([SMPL24, COCO23], "coco17")
    assert valid.all()
    for k, name in enumerate(COCO17.names):
        expected = (0, SMPL24.index(name)) if name in SMPL24.names else (1, COCO23.index(name))
        assert (source[k], index[k]) == expected, name
    _, _, valid = merged_keypoint_mapping([COCO23], "h36m17")
    assert [n for n, v in zip(H36M17.names, valid) if not v] == ["pelvis", "spine", "thorax", "neck_base", "head"]


def test_keypoints_gathers_by_name():
    output = _output(torch.float64)
    h36m, mask = output.keypoints("h36m17")
    assert h36m.shape == (2, 17, 3) and h36m.dtype == torch.float64 and mask.shape == (17,)
    torch.testing.assert_close(h36m[:, 0], output.joints[:, SMPL24.index("pelvis")])  # from smpl24
    torch.testing.assert_close(h36m[:, H36M17.index("right_hip")], output.keypoint_sets["coco23"][:, COCO23.index("right_hip")])
    missing = [n for n, m in zip(H36M17.names, mask.tolist()) if m == 0]
    assert missing == ["spine", "thorax", "neck_base", "head"]
    assert (h36m[:, [H36M17.index(n) for n in missing]] == 0).all()


def test_keypoints_keep_gradients():
    output = _output()
    output.keypoint_sets["coco23"].requires_grad_(True)
    keypoints, _ = output.keypoints("coco17")
    keypoints.sum().backward()
    grad = output.keypoint_sets["coco23"].grad
    # Joints taken from smpl24 (shoulders, elbows...) get no gradient through coco23.
    assert grad[:, COCO23.index("nose")].eq(1).all() and grad[:, COCO23.index("left_elbow")].eq(0).all()
