import numpy as np
import pytest
import torch
import trimesh

from lowres_hps.render import face_normals, lambert_shading, vertex_normals

DTYPES = [torch.float32, torch.float64]


@pytest.mark.parametrize("dtype", DTYPES)
def test_face_normals_follow_the_right_hand_rule(device, dtype):
    corners = [[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 1.0]]
    vertices = torch.tensor(corners, dtype=dtype, device=device)
    faces = torch.tensor([[0, 1, 2], [0, 2, 1], [0, 1, 1]], device=device)
    normals = face_normals(vertices, faces)
    expected = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0], [0.0, 0.0, 0.0]], dtype=dtype, device=device)
    torch.testing.assert_close(normals, expected)


@pytest.mark.parametrize("dtype", DTYPES)
def test_vertex_normals_of_a_sphere_point_outwards_and_are_area_weighted(dtype):
    mesh = trimesh.creation.icosphere(subdivisions=2)
    vertices = torch.as_tensor(mesh.vertices, dtype=dtype)
    faces = torch.as_tensor(mesh.faces)
    # Batched: a second, shifted copy has the same normals.
    batch = torch.stack([vertices, vertices + 5.0])
    normals = vertex_normals(batch, faces)
    assert normals.shape == batch.shape
    torch.testing.assert_close(normals[1], normals[0])
    assert ((normals[0] * vertices).sum(-1) > 0.98).all()
    # Area weighting: the sum of the face cross products (twice the face areas times the normals).
    summed = np.zeros_like(mesh.vertices)
    corners = mesh.vertices[mesh.faces]
    cross = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    for corner in range(3):
        np.add.at(summed, mesh.faces[:, corner], cross)
    expected = summed / np.linalg.norm(summed, axis=1, keepdims=True)
    torch.testing.assert_close(normals[0], torch.as_tensor(expected, dtype=dtype), atol=1e-6, rtol=1e-5)


def test_vertex_normals_gradcheck():
    vertices = torch.tensor(
        [[0.0, 0.0, 0.0], [1.0, 0.1, 0.0], [0.2, 1.0, 0.1], [0.3, 0.2, 1.0]], dtype=torch.float64, requires_grad=True
    )
    faces = torch.tensor([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    assert torch.autograd.gradcheck(lambda v: vertex_normals(v, faces), (vertices,))


@pytest.mark.parametrize("dtype", DTYPES)
def test_lambert_shading(device, dtype):
    albedo = torch.tensor([0.8, 0.4, 0.2], dtype=dtype, device=device)
    light = (0.0, 0.0, 1.0)  # travelling away from the camera: lights surfaces that face the camera
    normals = torch.tensor([[0.0, 0.0, -1.0], [0.0, 0.0, 1.0], [0.6, 0.0, -0.8]], dtype=dtype, device=device)
    shaded = lambert_shading(normals, albedo, light, ambient=0.3, diffuse=0.7)
    torch.testing.assert_close(shaded[0], albedo)  # facing the light
    torch.testing.assert_close(shaded[1], 0.3 * albedo)  # facing away: ambient only
    torch.testing.assert_close(shaded[2], (0.3 + 0.7 * 0.8) * albedo)
    # The light direction need not be unit length.
    torch.testing.assert_close(lambert_shading(normals, albedo, (0.0, 0.0, 5.0), 0.3, 0.7), shaded)
    with pytest.raises(ValueError, match="light_direction"):
        lambert_shading(normals, albedo, (0.0, 1.0))
    with pytest.raises(ValueError, match="faces"):
        face_normals(normals, torch.tensor([0, 1, 2]))
