import pytest
import torch

from lowres_hps.body.keypoints import ANNY104, SMPL24, SMPLX55
from lowres_hps.body.parts import BODY_PARTS, face_part_labels, joint_part, vertex_part_labels


@pytest.mark.parametrize("convention", [ANNY104, SMPL24, SMPLX55], ids=lambda c: c.name)
def test_every_native_joint_has_a_part(convention):
    parts = {joint_part(name) for name in convention.names}
    assert parts == set(BODY_PARTS[1:])


def test_joint_part_examples():
    assert joint_part("upperarm01.L") == "left_upper_arm"
    assert joint_part("lowerleg02.R") == "right_calf"
    assert joint_part("right_elbow") == "right_forearm"
    assert joint_part("head_anny") == "head"
    with pytest.raises(ValueError, match="tail"):
        joint_part("tail")


def test_anny_parts_are_where_they_belong(anny_body):
    labels = vertex_part_labels(anny_body)
    assert labels.shape == (anny_body.num_vertices,) and int(labels.min()) >= 1
    vertices = anny_body.forward_vector(anny_body.pose_spec.rest_vector()).vertices[0]
    centre = {name: vertices[labels == i].mean(0) for i, name in enumerate(BODY_PARTS) if i > 0}
    # Canonical frame: +Y up, the body's left is +X.
    assert centre["head"][1] > centre["torso"][1] > centre["left_thigh"][1] > centre["left_calf"][1] > centre["left_foot"][1]
    for part in ("upper_arm", "forearm", "hand", "thigh", "calf", "foot"):
        assert centre[f"left_{part}"][0] > 0 > centre[f"right_{part}"][0]
    faces = face_part_labels(anny_body)
    assert faces.shape == (anny_body.num_faces,)
    # Most triangles lie inside one part.
    corner = labels[anny_body.faces]
    assert (corner == faces[:, None]).all(dim=1).float().mean() > 0.9
