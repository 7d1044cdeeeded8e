import numpy as np
import pytest
import torch
import trimesh

from lowres_hps.render import Fragments, project_vertices, rasterize, rasterize_screen

DTYPES = [torch.float32, torch.float64]


# --------------------------------------------------------------------------------------------------
# Independent references: every pixel centre against every face, no pair lists, no culling tricks.


def reference_hard(screen: np.ndarray, faces: np.ndarray, height: int, width: int):
    """Brute-force z-buffer in float64 numpy: (face_index, depth), -1 / inf on the background."""
    screen = np.asarray(screen, dtype=np.float64)
    ys, xs = np.mgrid[0:height, 0:width]
    px, py = xs.reshape(-1, 1).astype(np.float64), ys.reshape(-1, 1).astype(np.float64)
    a, b, c = (screen[faces[:, k]] for k in range(3))

    def weight(u, v):  # twice the signed area of (u, v, p): the barycentric weight of the third corner
        return (v[:, 0] - u[:, 0]) * (py - u[:, 1]) - (v[:, 1] - u[:, 1]) * (px - u[:, 0])

    wa, wb, wc = weight(b, c), weight(c, a), weight(a, b)
    area = wa + wb + wc
    in_front = (np.stack([a[:, 2], b[:, 2], c[:, 2]]) > 1e-2).all(0)
    inside = (area != 0) & (wa * area >= 0) & (wb * area >= 0) & (wc * area >= 0) & in_front
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = area / (wa / a[:, 2] + wb / b[:, 2] + wc / c[:, 2])
    depth = np.where(inside, depth, np.inf)
    face = depth.argmin(1)
    nearest = depth.min(1)
    face[~np.isfinite(nearest)] = -1
    return face.reshape(height, width), nearest.reshape(height, width)


def reference_soft_alpha(screen: torch.Tensor, faces: torch.Tensor, height: int, width: int, sigma: float,
                         dist_eps: float):
    """SoftRas silhouette of (B, V, 3) screen vertices by dense torch ops (autograd gives its gradient)."""
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    p = torch.stack([xs, ys], -1).reshape(-1, 1, 2).to(screen)  # (P, 1, 2)
    corners = screen[:, faces, :2]  # (B, F, 3, 2)
    distance2, edge_signs = [], []
    for i in range(3):
        u, v = corners[:, None, :, i], corners[:, None, :, (i + 1) % 3]  # (B, 1, F, 2)
        e, w = v - u, p - u
        t = ((w * e).sum(-1) / (e * e).sum(-1)).clamp(0, 1)
        distance2.append(((w - t[..., None] * e) ** 2).sum(-1))
        edge_signs.append(torch.sign(e[..., 0] * w[..., 1] - e[..., 1] * w[..., 0]))
    distance2 = torch.stack(distance2).amin(0)
    inside = (edge_signs[0] >= 0) & (edge_signs[1] >= 0) & (edge_signs[2] >= 0)
    inside |= (edge_signs[0] <= 0) & (edge_signs[1] <= 0) & (edge_signs[2] <= 0)
    probability = torch.sigmoid(torch.where(inside, distance2, -distance2) / sigma)
    probability = torch.where(probability >= dist_eps, probability, torch.zeros_like(probability))
    return (1 - torch.prod(1 - probability, dim=-1)).reshape(-1, height, width)


# --------------------------------------------------------------------------------------------------
# Test meshes


def sphere(subdivisions: int = 2, center=(0.0, 0.0, 4.0), dtype=torch.float64, device="cpu"):
    mesh = trimesh.creation.icosphere(subdivisions=subdivisions, radius=1.0)
    vertices = torch.as_tensor(mesh.vertices, dtype=dtype, device=device)
    vertices = vertices + torch.tensor(center, dtype=dtype, device=device)
    return vertices[None], torch.as_tensor(mesh.faces, dtype=torch.long, device=device)


def overlapping_triangles(count: int = 12, size=(20, 24), seed: int = 0, dtype=torch.float64):
    """(1, 3 count, 3) screen vertices of random, interpenetrating triangles, and their faces."""
    generator = np.random.default_rng(seed)
    height, width = size
    xy = generator.uniform([-3, -3], [width + 2, height + 2], size=(count * 3, 2))
    z = generator.uniform(1.0, 5.0, size=(count * 3, 1))
    screen = torch.as_tensor(np.concatenate([xy, z], 1), dtype=dtype)[None]
    return screen, torch.arange(count * 3).view(count, 3)


def camera(size: int, focal: float, dtype=torch.float64, device="cpu"):
    return focal, torch.tensor([(size - 1) / 2, (size - 1) / 2], dtype=dtype, device=device)


def iou(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.bool(), b.bool()
    return float((a & b).sum() / (a | b).sum())


def assert_matches_reference(fragments: Fragments, screen: torch.Tensor, faces: torch.Tensor):
    height, width = fragments.alpha.shape[-2:]
    face, depth = reference_hard(screen[0].detach().cpu().numpy(), faces.cpu().numpy(), height, width)
    face, depth = torch.as_tensor(face), torch.as_tensor(depth)
    ours_face, ours_depth = fragments.face_index[0].cpu(), fragments.depth[0].detach().cpu().double()
    assert iou(ours_face >= 0, face >= 0) >= 0.99
    assert (ours_face == face).double().mean() >= 0.99
    both = (ours_face >= 0) & (face >= 0)
    close = torch.isclose(ours_depth[both], depth[both], rtol=1e-4)
    assert close.double().mean() >= 0.99
    assert torch.isinf(ours_depth[ours_face < 0]).all()


# --------------------------------------------------------------------------------------------------
# Hard mode


@pytest.mark.parametrize("dtype", DTYPES)
def test_hard_matches_reference_on_sphere(device, dtype):
    vertices, faces = sphere(dtype=dtype, device=device)
    focal, center = camera(32, 40.0, dtype, device)
    fragments = rasterize(vertices, faces, focal, center, (32, 32))
    assert fragments.alpha.dtype == dtype and fragments.alpha.device.type == device.type
    assert fragments.face_index.dtype == torch.long and fragments.barycentrics.shape == (1, 32, 32, 3)
    assert 0.1 < fragments.alpha.mean() < 0.5
    assert_matches_reference(fragments, project_vertices(vertices, focal, center), faces)


@pytest.mark.parametrize("dtype", DTYPES)
def test_hard_z_buffer_picks_the_nearest_of_overlapping_triangles(device, dtype):
    screen, faces = overlapping_triangles(dtype=dtype)
    screen, faces = screen.to(device), faces.to(device)
    fragments = rasterize_screen(screen, faces, (20, 24))
    face, _ = reference_hard(screen[0].cpu().numpy(), faces.cpu().numpy(), 20, 24)
    # Several triangles really overlap here, so the z-buffer has something to decide.
    assert len(np.unique(face[face >= 0])) >= 6
    assert_matches_reference(fragments, screen, faces)


def test_hard_matches_reference_on_anny_subset(anny_body):
    output = anny_body(anny_body.rest_params(1))
    vertices = output.vertices.detach().double() * torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64)
    faces = output.faces
    # A slab through the thighs (small enough for the brute-force reference): two open tubes, so back
    # faces show through the cuts and the z-buffer has work to do.
    slab = (vertices[0, :, 1] > 0.1) & (vertices[0, :, 1] < 0.4)  # y is down in camera axes
    faces = faces[slab[faces].all(1)]
    assert 500 < len(faces) < 2000
    vertices = vertices + torch.tensor([0.0, -0.25, 2.0], dtype=torch.float64)
    focal, center = camera(40, 150.0)
    fragments = rasterize(vertices, faces, focal, center, (40, 40))
    assert fragments.alpha.mean() > 0.2
    assert_matches_reference(fragments, project_vertices(vertices, focal, center), faces)


def test_backface_culling_keeps_the_silhouette_of_a_closed_mesh():
    vertices, faces = sphere()
    focal, center = camera(32, 40.0)
    full = rasterize(vertices, faces, focal, center, (32, 32))
    culled = rasterize(vertices, faces, focal, center, (32, 32), cull_backfaces=True)
    assert torch.equal(full.face_index, culled.face_index)
    # With the winding reversed the near half is culled and the inside of the far half shows.
    inside_out = rasterize(vertices, faces.flip(1), focal, center, (32, 32), cull_backfaces=True)
    assert iou(inside_out.alpha, full.alpha) > 0.97
    both = (inside_out.alpha > 0) & (full.alpha > 0)
    assert (inside_out.depth[both] > full.depth[both]).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_barycentrics_and_depth_locate_the_pixel_centre_on_the_surface(dtype):
    vertices, faces = sphere(dtype=dtype)
    focal, center = camera(32, 40.0, dtype)
    fragments = rasterize(vertices, faces, focal, center, (32, 32))
    covered = fragments.face_index[0] >= 0
    corners = vertices[0, faces[fragments.face_index[0][covered]]]  # (P, 3, 3)
    points = (fragments.barycentrics[0][covered][..., None] * corners).sum(-2)
    ys, xs = torch.nonzero(covered, as_tuple=True)
    tolerance = dict(atol=1e-3, rtol=1e-4) if dtype == torch.float32 else dict(atol=1e-8, rtol=1e-8)
    projected = project_vertices(points[None], focal, center)[0, :, :2]
    torch.testing.assert_close(projected, torch.stack([xs, ys], -1).to(dtype), **tolerance)
    torch.testing.assert_close(points[:, 2], fragments.depth[0][covered], **tolerance)
    torch.testing.assert_close(fragments.barycentrics[0][covered].sum(-1), torch.ones_like(points[:, 0]), **tolerance)
    assert (fragments.barycentrics[0][~covered] == 0).all()


def test_hard_depth_and_barycentrics_gradcheck():
    # One large triangle facing the camera; at its interior pixels depth and barycentrics are smooth.
    vertices = torch.tensor(
        [[[-1.0, -1.0, 3.0], [1.2, -0.8, 3.5], [-0.2, 1.1, 2.5]]], dtype=torch.float64, requires_grad=True
    )
    faces = torch.tensor([[0, 1, 2]])
    focal, center = camera(6, 10.0)

    def depth_and_bary(v):
        fragments = rasterize(v, faces, focal, center, (6, 6))
        covered = fragments.face_index >= 0
        return torch.where(covered, fragments.depth, 0.0), fragments.barycentrics

    assert (rasterize(vertices, faces, focal, center, (6, 6)).alpha > 0).sum() >= 10
    assert torch.autograd.gradcheck(depth_and_bary, (vertices,))


def test_hard_colours_follow_the_visible_face():
    screen, faces = overlapping_triangles()
    face_colors = torch.rand(len(faces), 2, dtype=torch.float64)
    fragments = rasterize_screen(screen, faces, (20, 24), face_colors=face_colors, background_color=-1.0)
    covered = fragments.face_index[0] >= 0
    torch.testing.assert_close(fragments.rgb[0][covered], face_colors[fragments.face_index[0][covered]])
    assert (fragments.rgb[0][~covered] == -1).all()
    # A linear vertex colour (here the vertex's own depth) interpolates to the pixel's depth.
    fragments = rasterize_screen(screen, faces, (20, 24), vertex_colors=screen[0, :, 2:])
    torch.testing.assert_close(fragments.rgb[0, ..., 0][covered], fragments.depth[0][covered])


@pytest.mark.parametrize("mode", ["hard", "soft"])
def test_batch_chunks_and_screen_input_agree(mode):
    vertices, faces = sphere(subdivisions=1)
    shifted = torch.cat([vertices, vertices + torch.tensor([0.6, -0.3, 1.0], dtype=torch.float64)])
    focal, center = camera(24, 30.0)
    batched = rasterize(shifted, faces, focal, center, (24, 24), mode, sigma=0.3)
    for b in range(2):
        single = rasterize(shifted[b:b + 1], faces, focal, center, (24, 24), mode, sigma=0.3)
        torch.testing.assert_close(batched.alpha[b:b + 1], single.alpha)
    chunked = rasterize(shifted, faces, focal, center, (24, 24), mode, sigma=0.3, max_pairs=50)
    torch.testing.assert_close(chunked.alpha, batched.alpha)
    screen = rasterize_screen(project_vertices(shifted, focal, center), faces, (24, 24), mode, sigma=0.3)
    torch.testing.assert_close(screen.alpha, batched.alpha)
    if mode == "hard":
        assert torch.equal(chunked.face_index, batched.face_index)


def test_faces_behind_the_camera_or_off_screen_are_dropped():
    vertices, faces = sphere(center=(0.0, 0.0, -4.0))
    vertices.requires_grad_(True)
    focal, center = camera(16, 20.0)
    for mode in ("hard", "soft"):
        fragments = rasterize(vertices, faces, focal, center, (16, 16), mode)
        assert fragments.alpha.sum() == 0
    # Nothing visible: a soft loss still backpropagates, to zero gradients.
    (grad,) = torch.autograd.grad(fragments.alpha.sum(), vertices)
    assert (grad == 0).all()
    # A triangle straddling the near plane is dropped whole; one far off screen touches nothing.
    vertices = torch.tensor(
        [[[0.0, 0.0, -1.0], [1.0, 0.0, 2.0], [0.0, 1.0, 2.0], [90, 90, 2], [91, 90, 2], [90, 91, 2]]],
        dtype=torch.float64,
    )
    fragments = rasterize(vertices, torch.tensor([[0, 1, 2], [3, 4, 5]]), focal, center, (16, 16))
    assert fragments.alpha.sum() == 0 and (fragments.face_index == -1).all() and torch.isinf(fragments.depth).all()


def test_input_checks():
    vertices, faces = sphere(subdivisions=0)
    focal, center = camera(8, 10.0)
    with pytest.raises(ValueError, match="vertices"):
        rasterize(vertices[..., :2], faces, focal, center, (8, 8))
    with pytest.raises(ValueError, match="screen_vertices"):
        rasterize_screen(vertices[0], faces, (8, 8))
    with pytest.raises(ValueError, match="faces"):
        rasterize(vertices, faces[:, :2], focal, center, (8, 8))
    with pytest.raises(ValueError, match="mode"):
        rasterize(vertices, faces, focal, center, (8, 8), "wire")
    with pytest.raises(ValueError, match="image_size"):
        rasterize(vertices, faces, focal, center, (8, 0))
    with pytest.raises(ValueError, match="sigma"):
        rasterize(vertices, faces, focal, center, (8, 8), "soft", sigma=0.0)
    with pytest.raises(ValueError, match="not both"):
        rasterize(vertices, faces, focal, center, (8, 8), vertex_colors=vertices[0], face_colors=vertices[0, :20])
    with pytest.raises(ValueError, match="vertex_colors"):
        rasterize(vertices, faces, focal, center, (8, 8), vertex_colors=torch.ones(3, 3))
    with pytest.raises(ValueError, match="background_color"):
        rasterize(vertices, faces, focal, center, (8, 8), vertex_colors=vertices[0], background_color=torch.zeros(8, 8))


# --------------------------------------------------------------------------------------------------
# Soft mode


@pytest.mark.parametrize("dtype", DTYPES)
def test_soft_silhouette_and_gradient_match_the_dense_reference(device, dtype):
    screen, faces = overlapping_triangles(count=6, size=(12, 14), seed=1, dtype=dtype)
    screen = screen.to(device).requires_grad_(True)
    faces = faces.to(device)
    sigma, dist_eps = 0.7, 1e-4
    alpha = rasterize_screen(screen, faces, (12, 14), "soft", sigma=sigma, dist_eps=dist_eps).alpha
    expected = reference_soft_alpha(screen, faces, 12, 14, sigma, dist_eps)
    tolerance = dict(atol=1e-5, rtol=1e-4) if dtype == torch.float32 else dict(atol=1e-10, rtol=1e-9)
    torch.testing.assert_close(alpha, expected, **tolerance)
    weights = torch.rand(alpha.shape, dtype=dtype, generator=torch.Generator().manual_seed(0)).to(device)
    (grad,) = torch.autograd.grad((alpha * weights).sum(), screen)
    (expected_grad,) = torch.autograd.grad((expected * weights).sum(), screen)
    assert torch.isfinite(grad).all() and grad[..., :2].abs().sum() > 0
    torch.testing.assert_close(grad, expected_grad, **tolerance)


def test_soft_silhouette_gradcheck():
    vertices = torch.tensor(
        [[[-0.8, -0.6, 3.0], [0.5, -0.7, 3.2], [-0.3, 0.6, 2.8], [0.2, 0.1, 2.5], [0.9, 0.8, 3.1]]],
        dtype=torch.float64,
        requires_grad=True,
    )
    faces = torch.tensor([[0, 1, 2], [3, 1, 4]])
    focal, center = camera(6, 5.0)
    # A tiny dist_eps puts every pair in, so no pair crosses the cut-off while gradcheck nudges vertices.
    silhouette = lambda v: rasterize(v, faces, focal, center, (6, 6), "soft", sigma=0.5, dist_eps=1e-12).alpha
    assert torch.autograd.gradcheck(silhouette, (vertices,))


def test_soft_tends_to_hard_as_sigma_shrinks():
    vertices, faces = sphere()
    focal, center = camera(32, 40.0)
    hard = rasterize(vertices, faces, focal, center, (32, 32)).alpha
    soft = rasterize(vertices, faces, focal, center, (32, 32), "soft", sigma=0.01).alpha
    assert iou(soft > 0.5, hard > 0) >= 0.98
    assert ((soft - hard).abs() < 0.05).double().mean() > 0.95


def test_soft_silhouette_optimisation_moves_the_mesh_onto_the_target():
    vertices, faces = sphere(subdivisions=1, dtype=torch.float32)
    focal, center = camera(32, 40.0, torch.float32)
    goal = torch.tensor([0.4, -0.3])

    def silhouette(shift, mode="soft"):
        moved = vertices + torch.cat([shift, shift.new_zeros(1)])
        return rasterize(moved, faces, focal, center, (32, 32), mode, sigma=0.5, cull_backfaces=True).alpha

    target = silhouette(goal)
    shift = torch.tensor([-0.5, 0.4], requires_grad=True)
    optimizer = torch.optim.Adam([shift], lr=0.1)
    schedule = torch.optim.lr_scheduler.ExponentialLR(optimizer, 0.9)
    losses = []
    for step in range(30):
        loss = ((silhouette(shift) - target) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        if step == 0:  # the target lies right (+x) and up (-y): the loss falls that way
            assert shift.grad[0] < 0 and shift.grad[1] > 0
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    target = silhouette(goal, "hard")
    assert iou(silhouette(torch.tensor([-0.5, 0.4]), "hard"), target) < 0.3
    assert iou(silhouette(shift.detach(), "hard"), target) > 0.9
    assert losses[-1] < 0.05 * losses[0]


def test_soft_colours_pick_the_nearest_face_and_have_gradients():
    # Two overlapping triangles: red in front (z = 2), green behind (z = 3).
    screen = torch.tensor(
        [[[1.0, 1.0, 2.0], [12.0, 2.0, 2.0], [3.0, 12.0, 2.0], [4.0, 3.0, 3.0], [14.0, 5.0, 3.0], [7.0, 14.0, 3.0]]],
        dtype=torch.float64,
        requires_grad=True,
    )
    faces = torch.tensor([[0, 1, 2], [3, 4, 5]])
    colors = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64, requires_grad=True)
    fragments = rasterize_screen(screen, faces, (16, 16), "soft", face_colors=colors, sigma=0.1, background_color=0.5)
    rgb = fragments.rgb[0]
    assert fragments.rgb.shape == (1, 16, 16, 3)
    torch.testing.assert_close(rgb[5, 5], torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64), atol=1e-3, rtol=0)
    torch.testing.assert_close(rgb[11, 9], torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64), atol=1e-3, rtol=0)
    torch.testing.assert_close(rgb[15, 0], torch.full((3,), 0.5, dtype=torch.float64))
    screen_grad, color_grad = torch.autograd.grad(rgb[..., 0].sum() + fragments.alpha.sum(), (screen, colors))
    assert torch.isfinite(screen_grad).all() and screen_grad[..., :2].abs().sum() > 0
    assert color_grad[0, 0] > 0 and color_grad[0, 1] == 0
    # Soft mode fills in no z-buffer outputs.
    assert fragments.depth is None and fragments.face_index is None and fragments.barycentrics is None


def test_soft_colours_with_vertex_colours_and_background_image():
    vertices, faces = sphere(subdivisions=1)
    focal, center = camera(16, 20.0)
    background = torch.rand(1, 16, 16, 3, dtype=torch.float64)
    white = torch.ones(len(vertices[0]), 3, dtype=torch.float64)
    colours = dict(vertex_colors=white, background_color=background)
    fragments = rasterize(vertices, faces, focal, center, (16, 16), "soft", **colours)
    rgb = fragments.rgb
    torch.testing.assert_close(rgb[0, 0, 0], background[0, 0, 0])
    torch.testing.assert_close(rgb[0, 8, 8], torch.ones(3, dtype=torch.float64))




def test_barycentrics_of_a_face_without_area_are_finite():
    # A body regressed with a negative camera scale lands ~900 m away (the scale is clamped): its faces cover a pixel
    # with float32-rounded areas of exactly 0, which once gave 0/0 barycentrics and NaN soft colours in training.
    from lowres_hps.render.rasterizer import _barycentrics

    cross = [torch.zeros(2, requires_grad=True), torch.zeros(2), torch.zeros(2)]
    bary = _barycentrics(cross)
    assert torch.isfinite(bary).all()
    bary.sum().backward()
    assert torch.isfinite(cross[0].grad).all()
