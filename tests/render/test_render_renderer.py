import pytest
import torch
import trimesh

from lowres_hps.geometry import body_to_opencv
from lowres_hps.render import DEFAULT_ALBEDO, rasterize, render_depth, render_rgb, render_silhouette


def sphere(dtype=torch.float64):
    mesh = trimesh.creation.icosphere(subdivisions=2)
    vertices = torch.as_tensor(mesh.vertices, dtype=dtype) + torch.tensor([0.0, 0.0, 4.0], dtype=dtype)
    return vertices[None], torch.as_tensor(mesh.faces)


CAMERA = dict(focal=40.0, principal_point=torch.tensor([15.5, 15.5]), image_size=(32, 32))


def test_silhouette_and_depth_are_the_rasterizer_outputs():
    vertices, faces = sphere()
    hard = rasterize(vertices, faces, **CAMERA)
    torch.testing.assert_close(render_silhouette(vertices, faces, mode="hard", **CAMERA), hard.alpha)
    torch.testing.assert_close(render_depth(vertices, faces, **CAMERA), hard.depth)
    soft = render_silhouette(vertices, faces, sigma=0.2, **CAMERA)
    torch.testing.assert_close(soft, rasterize(vertices, faces, mode="soft", sigma=0.2, **CAMERA).alpha)
    # Depth: the sphere's front pole faces the camera at z = 3.
    assert render_depth(vertices, faces, **CAMERA)[0, 15:17, 15:17].sub(3.0).abs().max() < 0.02


@pytest.mark.parametrize("mode", ["hard", "soft"])
def test_rgb_is_lit_from_the_camera_side(mode):
    vertices, faces = sphere()
    rgb = render_rgb(vertices, faces, mode=mode, light_direction=(0.0, 0.0, 1.0), background_color=0.0, **CAMERA)
    assert rgb.shape == (1, 32, 32, 3)
    albedo = torch.tensor(DEFAULT_ALBEDO, dtype=torch.float64)
    # Facing the light in the middle: the full albedo; towards the rim: darker; outside: background.
    torch.testing.assert_close(rgb[0, 15, 15], albedo, atol=0.02, rtol=0)
    assert (rgb[0, 15, 7] < rgb[0, 15, 12]).all()
    assert (rgb[0, 0, 0] == 0).all()


def test_rgb_face_colours_are_flat_and_background_images_show_through():
    vertices, faces = sphere()
    face_colors = torch.rand(len(faces), 3, dtype=torch.float64)
    background = torch.rand(1, 32, 32, 3, dtype=torch.float64)
    unlit = dict(ambient=1.0, diffuse=0.0)
    rgb = render_rgb(vertices, faces, face_colors=face_colors, background_color=background, **unlit, **CAMERA)
    fragments = rasterize(vertices, faces, **CAMERA)
    covered = fragments.face_index[0] >= 0
    torch.testing.assert_close(rgb[0][covered], face_colors[fragments.face_index[0][covered]])
    torch.testing.assert_close(rgb[0][~covered], background[0][~covered])
    with pytest.raises(ValueError, match="not both"):
        render_rgb(vertices, faces, face_colors=face_colors, vertex_colors=vertices[0], **CAMERA)


def test_rgb_gradients_reach_vertices_and_colours():
    vertices, faces = sphere()
    vertices.requires_grad_(True)
    colors = torch.full((vertices.shape[1], 3), 0.5, dtype=torch.float64, requires_grad=True)
    rgb = render_rgb(vertices, faces, mode="soft", vertex_colors=colors, sigma=0.3, **CAMERA)
    vertex_grad, color_grad = torch.autograd.grad(rgb.sum(), (vertices, colors))
    assert torch.isfinite(vertex_grad).all() and vertex_grad.abs().sum() > 0
    assert torch.isfinite(color_grad).all() and (color_grad >= 0).all() and color_grad.sum() > 0


def test_anny_renders_in_every_mode(anny_body):
    output = anny_body(anny_body.rest_params(2))
    vertices = body_to_opencv(output.vertices.detach()) + torch.tensor([0.0, 0.0, 2.5])
    camera = dict(focal=80.0, principal_point=torch.tensor([31.5, 31.5]), image_size=(64, 64))
    hard = render_silhouette(vertices, output.faces, mode="hard", **camera)
    soft = render_silhouette(vertices, output.faces, cull_backfaces=True, **camera)
    rgb = render_rgb(vertices, output.faces, cull_backfaces=True, **camera)
    assert hard.shape == soft.shape == (2, 64, 64) and rgb.shape == (2, 64, 64, 3)
    assert 0.05 < hard.mean() < 0.5
    # SoftRas sums many small contributions of the faces near a pixel: on a dense mesh the soft silhouette
    # covers the hard one and spills about a pixel beyond it.
    assert (soft[hard > 0] > 0.5).all()
    spill = (soft > 0.5) & (hard == 0)
    assert spill.sum() < 0.3 * hard.sum()
    assert ((rgb.sum(-1) > 0) == (hard > 0)).all()
