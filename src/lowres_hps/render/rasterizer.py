"""A differentiable triangle rasterizer in plain PyTorch (CPU or GPU): hard z-buffer and SoftRas modes.

Hand-written because no maintained library does this on a CPU here: pytorch3d ships no Linux wheels on
PyPI, and nvdiffrast and kaolin need CUDA.

How it works, with no Python loop over faces or pixels: every face gets the integer pixel box its
triangle (soft mode: grown by the distance beyond which its SoftRas probability falls under
``dist_eps``) covers; each box is expanded into (face, pixel) candidate pairs; each pair is evaluated in
batched tensor ops; and pixels reduce their pairs with scatter ops (``amax`` of inverse depth for the
z-buffer, sums for the soft silhouette and colours). Pairs are processed in chunks of at most
``max_pairs`` to bound memory.

Conventions: pixel centres are at integer coordinates (see :mod:`lowres_hps.geometry`), camera
coordinates are OpenCV's (x right, y down, z forward). A face is **front-facing** when its vertices
appear counter-clockwise to the camera, i.e. for outward-oriented meshes (trimesh's, Anny's, SMPL's)
when its outward normal points towards the camera; on screen (y down) its signed area is negative.

Soft mode follows SoftRas (Liu et al., ICCV 2019): each face covers pixel ``p`` with probability
``D = sigmoid(delta * d(p)^2 / sigma)``, ``d`` the distance from ``p`` to the triangle, ``delta = +1``
inside and ``-1`` outside; the silhouette is ``1 - prod_j (1 - D_j)``; colours are aggregated with
weights ``D_j exp(z_j / gamma)`` (``z_j = (z_far - z) / (z_far - z_near)``, 1 at the near plane and 0 at
the far one) against a background of weight ``exp(eps / gamma)``. Distances and ``sigma`` are in pixels
(``sigma`` in squared pixels. Both libraries measure in [-1, 1] image units: pytorch3d's default sigma
1e-4 is 0.1 px^2 at 64 px, the default here; SoftRas's 1e-5 is 0.01 px^2 at 64 px.)
On dense meshes (many sub-pixel faces) every face near a pixel adds a little, so the soft silhouette
spills about a pixel beyond the hard one at the default ``sigma``: compare soft renders with soft renders.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as nnf

from lowres_hps.core.checks import check_size, check_trailing
from lowres_hps.geometry.camera import perspective_project

__all__ = ["Fragments", "RASTER_MODES", "project_vertices", "rasterize", "rasterize_screen"]

RASTER_MODES = ("hard", "soft")
_SOFTRAS_BACKGROUND_EPS = 1e-3  # SoftRas's background depth term `eps`
_SWAP = torch.tensor([0, 2, 1])  # corner order of a face whose corners 1 and 2 are swapped


@dataclass
class Fragments:
    """What the rasterizer saw at each pixel.

    Attributes:
        alpha: (B, H, W) coverage. Hard mode: 1 where a face covers the pixel centre, else 0 (carries no
            gradient). Soft mode: the SoftRas silhouette ``1 - prod_j (1 - D_j)``, differentiable.
        depth: hard mode: (B, H, W) camera z of the nearest surface, ``+inf`` on the background;
            differentiable w.r.t. the vertices through the barycentrics. Soft mode: None.
        face_index: hard mode: (B, H, W) long index into ``faces`` of the visible face, -1 on the
            background. Soft mode: None.
        barycentrics: hard mode: (B, H, W, 3) perspective-correct barycentric coordinates of the pixel
            centre in the visible face (zero on the background), differentiable. Soft mode: None.
        rgb: (B, H, W, C) colours composited over the background colour (any channel count C), when
            vertex or face colours were given; else None. Hard: the visible face's colour, interpolated
            with ``barycentrics``; soft: SoftRas's depth-softmax aggregate.
    """

    alpha: torch.Tensor
    depth: torch.Tensor | None = None
    face_index: torch.Tensor | None = None
    barycentrics: torch.Tensor | None = None
    rgb: torch.Tensor | None = None


def project_vertices(
    vertices: torch.Tensor, focal: torch.Tensor | float, principal_point: torch.Tensor
) -> torch.Tensor:
    """Camera-frame vertices (B, V, 3) -> screen vertices (B, V, 3): pixel ``x, y`` and camera ``z``.

    ``focal`` and ``principal_point`` are as in :func:`lowres_hps.geometry.perspective_project`
    (a float, (B,) or (B, 2) focal; (2,) or (B, 2) principal point).
    """
    check_trailing(vertices, (3,), "vertices")
    principal_point = torch.as_tensor(principal_point, dtype=vertices.dtype, device=vertices.device)
    # Guard the division for vertices at or behind the camera: their faces are culled anyway.
    depth = vertices[..., 2:]
    safe = torch.where(depth.abs() > 1e-12, vertices, torch.ones_like(vertices))
    xy = perspective_project(safe, focal, principal_point)
    return torch.cat([xy, depth], dim=-1)


def rasterize(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    focal: torch.Tensor | float,
    principal_point: torch.Tensor,
    image_size: tuple[int, int],
    mode: str = "hard",
    **kwargs,
) -> Fragments:
    """Rasterize meshes given in camera coordinates.

    Args:
        vertices: (B, V, 3) OpenCV camera coordinates (z > 0 in front of the camera).
        faces: (F, 3) long triangle indices shared by the batch.
        focal: float, (B,) or (B, 2) focal length in pixels.
        principal_point: (2,) or (B, 2) in pixels.
        image_size: ``(H, W)``.
        mode: ``"hard"`` (z-buffer) or ``"soft"`` (SoftRas).
        **kwargs: options of :func:`rasterize_screen`.

    Returns:
        :class:`Fragments`.
    """
    return rasterize_screen(project_vertices(vertices, focal, principal_point), faces, image_size, mode, **kwargs)


def rasterize_screen(
    screen_vertices: torch.Tensor,
    faces: torch.Tensor,
    image_size: tuple[int, int],
    mode: str = "hard",
    *,
    vertex_colors: torch.Tensor | None = None,
    face_colors: torch.Tensor | None = None,
    background_color: torch.Tensor | float = 0.0,
    cull_backfaces: bool = False,
    sigma: float = 0.1,
    gamma: float = 1e-4,
    dist_eps: float = 1e-4,
    z_near: float = 1e-2,
    z_far: float = 100.0,
    max_pairs: int = 1 << 21,
) -> Fragments:
    """Rasterize meshes already projected to the screen.

    Args:
        screen_vertices: (B, V, 3) pixel ``x, y`` and camera depth ``z`` (see :func:`project_vertices`).
        faces: (F, 3) long triangle indices shared by the batch.
        image_size: ``(H, W)``.
        mode: ``"hard"`` (z-buffer) or ``"soft"`` (SoftRas).
        vertex_colors: optional (B, V, C) or (V, C) colours, interpolated perspective-correctly.
        face_colors: optional (B, F, C) or (F, C) colours (give at most one of the two).
        background_color: float, (C,) colour or (B, H, W, C) image behind the meshes.
        cull_backfaces: drop faces whose front (see the module docstring) is turned away from the camera.
            On closed, outward-oriented meshes (body models) no silhouette or visible face changes and the
            work halves.
        sigma: soft mode: sharpness, squared pixels; smaller is sharper.
        gamma: soft mode: sharpness of the colour aggregation over depth; smaller picks the nearest face.
        dist_eps: soft mode: faces contribute to pixels where their probability ``D`` is at least this.
        z_near: faces with a vertex at ``z <= z_near`` are dropped (no clipping).
        z_far: soft mode: the far depth of the colour aggregation's depth normalisation.
        max_pairs: at most this many (face, pixel) pairs are evaluated at once (bounds memory).

    Returns:
        :class:`Fragments` (see there what each mode fills in).
    """
    check_trailing(screen_vertices, (3,), "screen_vertices")
    if screen_vertices.ndim != 3:
        raise ValueError(f"screen_vertices must have shape (B, V, 3), got {tuple(screen_vertices.shape)}")
    if faces.ndim != 2 or faces.shape[-1] != 3:
        raise ValueError(f"faces must have shape (F, 3), got {tuple(faces.shape)}")
    if mode not in RASTER_MODES:
        raise ValueError(f"mode must be one of {RASTER_MODES}, got {mode!r}")
    if sigma <= 0 or gamma <= 0 or not 0 < dist_eps < 0.5:
        raise ValueError(f"need sigma > 0, gamma > 0 and 0 < dist_eps < 0.5, got {sigma}, {gamma}, {dist_eps}")
    height, width = check_size(image_size, "image_size")
    if screen_vertices.shape[0] * height * width >= 2**31:
        raise ValueError("batch * height * width must stay below 2**31 (pixel indices are int32)")
    faces = faces.to(device=screen_vertices.device, dtype=torch.long)
    colors = _face_vertex_colors(screen_vertices, faces, vertex_colors, face_colors)
    background = None
    if colors is not None:
        background = _background(background_color, colors, (screen_vertices.shape[0], height, width))

    radius = math.sqrt(sigma * math.log(1.0 / dist_eps - 1.0)) if mode == "soft" else 0.0
    kept = _select_faces(screen_vertices, faces, (height, width), radius, cull_backfaces, z_near)
    kept_colors = None
    if colors is not None:
        kept_colors = colors.flatten(0, 1).index_select(0, kept.flat)
        if not cull_backfaces:
            swapped_colors = kept_colors.index_select(1, _SWAP.to(kept_colors.device))
            kept_colors = torch.where(kept.swapped[:, None, None], swapped_colors, kept_colors)
    if mode == "hard":
        return _rasterize_hard(
            screen_vertices, faces.shape[0], kept, kept_colors, background, (height, width), max_pairs
        )
    return _rasterize_soft(
        screen_vertices, kept, kept_colors, background, (height, width), max_pairs, sigma, gamma, dist_eps,
        z_near, z_far,
    )


# --------------------------------------------------------------------------------------------------
# Faces kept and their (face, pixel) candidate pairs


@dataclass
class _KeptFaces:
    flat: torch.Tensor  # (K,) long index b * F + f
    vertex: torch.Tensor  # (K, 3) long index b * V + v of the corners, ordered to a negative screen area
    swapped: torch.Tensor  # (K,) bool: corners 1 and 2 were swapped to get that order
    low: torch.Tensor  # (K, 2) first pixel column and row of the box (float, integral values)
    count: torch.Tensor  # (K, 2) int32 number of columns and rows of the box
    corner_pixel: torch.Tensor  # (K,) int32 flat index b * H * W + y * W + x of the box's first pixel


def _select_faces(
    screen_vertices: torch.Tensor,
    faces: torch.Tensor,
    image_size: tuple[int, int],
    radius: float,
    cull_backfaces: bool,
    z_near: float,
) -> _KeptFaces:
    """Faces in front of the camera, non-degenerate, (front-facing,) whose box grown by ``radius``
    holds a pixel centre."""
    height, width = image_size
    num_vertices, num_faces = screen_vertices.shape[1], faces.shape[0]
    with torch.no_grad():
        # (B, F) planes per coordinate and corner: contiguous, and index_select is the fastest gather.
        planes = screen_vertices.detach().permute(2, 0, 1).contiguous()
        x, y = ([planes[k].index_select(1, faces[:, c]) for c in range(3)] for k in range(2))
        area2 = (x[1] - x[0]) * (y[2] - y[0]) - (y[1] - y[0]) * (x[2] - x[0])
        keep = area2 < 0 if cull_backfaces else area2 != 0
        behind = planes[2] <= z_near
        if behind.any():
            keep &= ~behind[:, faces].any(-1)
        # Boxes in float, clamped before any cast so that far-off faces cannot overflow.
        lows, counts = [], []
        for corner, size in ((x, width), (y, height)):
            low = torch.ceil(torch.minimum(torch.minimum(corner[0], corner[1]), corner[2]) - radius).clamp_(0, size)
            high = torch.floor(torch.maximum(torch.maximum(corner[0], corner[1]), corner[2]) + radius)
            count = high.clamp_(-1, size - 1).sub_(low).add_(1)
            keep &= count > 0
            lows.append(low.flatten())
            counts.append(count.flatten())
        flat = keep.flatten().nonzero().squeeze(1)
        low = torch.stack([low.index_select(0, flat) for low in lows], dim=1)
        count = torch.stack([count.index_select(0, flat) for count in counts], dim=1).int()
        swapped = area2.flatten().index_select(0, flat) > 0
        batch = flat // num_faces
        vertex = faces.index_select(0, flat % num_faces)
        if not cull_backfaces:  # culling keeps only negative areas
            vertex = torch.where(swapped[:, None], vertex.index_select(1, _SWAP.to(vertex.device)), vertex)
        vertex += (batch * num_vertices)[:, None]
        corner_pixel = ((batch * height + low[:, 1].long()) * width + low[:, 0].long()).int()
    return _KeptFaces(flat, vertex, swapped, low, count, corner_pixel)


def _gather_corners(screen_vertices: torch.Tensor, kept: _KeptFaces) -> tuple[torch.Tensor, ...]:
    """(K, 3) ``x``, ``y`` and ``z`` of the corners of the kept faces (differentiable; 1-D gathers, whose
    backward is the fast 1-D ``index_add``)."""
    planes = screen_vertices.flatten(0, 1).T.contiguous()
    index = kept.vertex.flatten()
    return tuple(plane.index_select(0, index).view(-1, 3) for plane in planes)


def _chunks(kept: _KeptFaces, max_pairs: int) -> list[tuple[int, int]]:
    """Contiguous ranges of kept faces with about ``max_pairs`` pairs each (a face is never split)."""
    pairs = kept.count[:, 0].long() * kept.count[:, 1]
    if pairs.numel() == 0:
        return []
    end = torch.cumsum(pairs, 0)
    total = int(end[-1])
    if total <= max_pairs:
        return [(0, pairs.numel())]
    cuts = torch.searchsorted(end, torch.arange(max_pairs, total, max_pairs, device=end.device), right=True)
    bounds = sorted({0, pairs.numel(), *cuts.tolist()})
    return list(zip(bounds[:-1], bounds[1:]))


@dataclass
class _Pairs:
    face: torch.Tensor  # (N,) int32 position in the chunk's faces
    column: torch.Tensor  # (N,) pixel column relative to the face's box, float
    row: torch.Tensor  # (N,) pixel row relative to the face's box, float
    pixel: torch.Tensor  # (N,) int32 flat pixel index b * H * W + y * W + x


def _expand_pairs(kept: _KeptFaces, start: int, stop: int, width: int, dtype: torch.dtype) -> _Pairs:
    """Every (face, pixel) pair of the boxes of kept faces ``start:stop`` (int32: fewer bytes to move)."""
    columns, rows = kept.count[start:stop].unbind(1)
    pairs = columns * rows
    total = int(pairs.sum())
    device = pairs.device
    face = torch.arange(stop - start, dtype=torch.int32, device=device).repeat_interleave(pairs, output_size=total)
    local = torch.arange(total, dtype=torch.int32, device=device)
    local -= (torch.cumsum(pairs, 0, dtype=torch.int32) - pairs).index_select(0, face)
    columns = columns.index_select(0, face)
    row = local // columns
    column = local - row * columns
    pixel = kept.corner_pixel[start:stop].index_select(0, face) + row * width + column
    return _Pairs(face, column.to(dtype), row.to(dtype), pixel)


# --------------------------------------------------------------------------------------------------
# Per-pair geometry

_X0, _Y0, _EX, _EY, _IL = 0, 1, 2, 5, 8  # rows of the face table


def _face_table(x: torch.Tensor, y: torch.Tensor, origin: torch.Tensor) -> torch.Tensor:
    """(K, 3) corner ``x`` and ``y`` and (K, 2) pixel origins -> (11, K) rows: ``x0, y0`` relative to the
    origin, the edges ``ex_i`` then ``ey_i`` (``v_{i+1} - v_i``), and ``1 / |e_i|^2``. Relative
    coordinates keep float32 precise far from the image origin."""
    ex, ey = x.roll(-1, dims=1) - x, y.roll(-1, dims=1) - y
    inv_length2 = 1.0 / (ex * ex + ey * ey).clamp_min(torch.finfo(x.dtype).tiny)
    start = torch.stack([x[:, 0] - origin[:, 0], y[:, 0] - origin[:, 1]])
    return torch.cat([start, ex.T, ey.T, inv_length2.T])


def _gather_rows(table: torch.Tensor, face: torch.Tensor) -> list[torch.Tensor]:
    """Each row of the face table per pair; one 1-D ``index_select`` per row is the fastest gather."""
    return [row.index_select(0, face) for row in table]


def _edge_terms(rows: list[torch.Tensor], column, row, nearest_points: bool = True):
    """Per pair and edge ``i`` (from ``v_i`` to ``v_{i+1}``): the cross product ``e_i x (p - v_i)``
    (twice the signed area of the sub-triangle opposite ``v_{i+2}``) and, with ``nearest_points``, the
    nearest point of the edge segment as ``t_i`` (``v_i + t_i e_i``), the offset ``p - v_i - t_i e_i``
    and its squared length.

    ``rows`` is :func:`_face_table` gathered per pair; ``column, row`` the pixel relative to the origin.
    Returns lists of three (N,) tensors ``cross, t, offset_x, offset_y, distance2``, all but ``cross``
    empty without ``nearest_points``.
    """
    dx, dy = column - rows[_X0], row - rows[_Y0]
    cross, t, offset_x, offset_y, distance2 = [], [], [], [], []
    for i in range(3):
        ex, ey = rows[_EX + i], rows[_EY + i]
        if i > 0:  # p - v_i = p - v_{i-1} - e_{i-1}
            dx, dy = dx - rows[_EX + i - 1], dy - rows[_EY + i - 1]
        cross.append(torch.addcmul(ex * dy, ey, dx, value=-1))
        if nearest_points:
            t.append((torch.addcmul(ex * dx, ey, dy) * rows[_IL + i]).clamp(0.0, 1.0))
            offset_x.append(torch.addcmul(dx, t[-1], ex, value=-1))
            offset_y.append(torch.addcmul(dy, t[-1], ey, value=-1))
            distance2.append(torch.addcmul(offset_x[-1] * offset_x[-1], offset_y[-1], offset_y[-1]))
    return cross, t, offset_x, offset_y, distance2


def _inside(cross: list[torch.Tensor]) -> torch.Tensor:
    """Inside (or on) a triangle of negative area: no sub-triangle has a positive area."""
    return torch.maximum(torch.maximum(cross[0], cross[1]), cross[2]) <= 0


def _barycentrics(cross: list[torch.Tensor]) -> torch.Tensor:
    """(N, 3) screen-space barycentrics from the cross products: vertex i is opposite edge i + 1."""
    total = cross[0] + cross[1] + cross[2]  # twice the signed area of the triangle
    # A face seen edge-on has no area: divide by a tiny area instead of 0 (finite values and gradients; its
    # soft colour terms are then clamped and normalised like any other's).
    tiny = torch.finfo(total.dtype).eps
    total = torch.where(total.abs() > tiny, total, torch.full_like(total, -tiny))
    return torch.stack([cross[1], cross[2], cross[0]], dim=-1) / total[:, None]


def _perspective_correct(bary: torch.Tensor, depth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Screen barycentrics (N, 3) and vertex depths (N, 3) -> camera barycentrics and depth at the pixel."""
    weights = bary / depth
    inverse_depth = weights.sum(-1, keepdim=True)
    return weights / inverse_depth, 1.0 / inverse_depth.squeeze(-1)


# --------------------------------------------------------------------------------------------------
# Hard mode


def _rasterize_hard(screen_vertices, num_faces, kept, kept_colors, background, image_size, max_pairs) -> Fragments:
    batch = screen_vertices.shape[0]
    height, width = image_size
    num_pixels = batch * height * width
    device, dtype = screen_vertices.device, screen_vertices.dtype
    x, y, z = _gather_corners(screen_vertices, kept)

    # Z-buffer without gradient: the nearest covering face per pixel (largest inverse depth, ties to the
    # lowest face index).
    with torch.no_grad():
        table = _face_table(x.detach(), y.detach(), kept.low)
        inverse_z = 1.0 / z.detach()
        hits = []
        for start, stop in _chunks(kept, max_pairs):
            pairs = _expand_pairs(kept, start, stop, width, dtype)
            face = pairs.face + start
            cross, *_ = _edge_terms(_gather_rows(table, face), pairs.column, pairs.row, nearest_points=False)
            inside = _inside(cross).nonzero().squeeze(1)
            face = face.index_select(0, inside).long()
            bary = _barycentrics([c.index_select(0, inside) for c in cross])
            hits.append((pairs.pixel.index_select(0, inside).long(), face, (bary * inverse_z[face]).sum(-1)))
        if hits:
            pixel, face, inverse_depth = (torch.cat(parts) for parts in zip(*hits))
        else:
            pixel = face = torch.empty(0, dtype=torch.long, device=device)
            inverse_depth = torch.empty(0, dtype=dtype, device=device)
        nearest = torch.full((num_pixels,), -1.0, dtype=dtype, device=device)
        nearest.scatter_reduce_(0, pixel, inverse_depth, "amax")
        winner = inverse_depth >= nearest[pixel]
        visible = torch.full((num_pixels,), kept.flat.numel(), dtype=torch.long, device=device)
        visible.scatter_reduce_(0, pixel[winner], face[winner], "amin")
        covered = (visible < kept.flat.numel()).nonzero().squeeze(1)
        visible = visible[covered]
        pixel_xy = torch.stack([covered % width, covered // width % height], dim=-1).to(dtype)

    # Differentiable barycentrics and depth of the visible faces only.
    table = _face_table(x[visible], y[visible], pixel_xy)
    cross, *_ = _edge_terms(list(table), 0.0, 0.0, nearest_points=False)
    bary, depth = _perspective_correct(_barycentrics(cross), z[visible])
    swapped = kept.swapped[visible]
    bary_out = torch.where(swapped[:, None], bary.index_select(1, _SWAP.to(device)), bary)  # order of ``faces``

    face_index = torch.full((num_pixels,), -1, dtype=torch.long, device=device)
    face_index[covered] = kept.flat[visible] % num_faces
    alpha = (face_index >= 0).to(dtype)
    depth_map = torch.full((num_pixels,), math.inf, dtype=dtype, device=device).index_put((covered,), depth)
    bary_map = bary.new_zeros(num_pixels, 3).index_put((covered,), bary_out)
    rgb = None
    if kept_colors is not None:
        pixel_rgb = (bary[..., None] * kept_colors[visible]).sum(-2)
        rgb = background.expand(num_pixels, -1).clone().index_put((covered,), pixel_rgb)
        rgb = rgb.view(batch, height, width, -1)
    return Fragments(
        alpha=alpha.view(batch, height, width),
        depth=depth_map.view(batch, height, width),
        face_index=face_index.view(batch, height, width),
        barycentrics=bary_map.view(batch, height, width, 3),
        rgb=rgb,
    )


# --------------------------------------------------------------------------------------------------
# Soft mode


class _SoftCoverage(torch.autograd.Function):
    """Per pixel ``sum_j softplus(delta_j d_j^2 / sigma)``, which is ``-sum_j log(1 - D_j)``, with an
    analytic backward (autograd through the per-pair ops is several times slower and larger)."""

    @staticmethod
    def forward(ctx, x, y, origin, pairs_face, column, row, pixel, num_pixels: int, sigma: float, cutoff: float):
        rows = _gather_rows(_face_table(x, y, origin), pairs_face)
        cross, t, offset_x, offset_y, distance2 = _edge_terms(rows, column, row)
        # The nearest edge gives the distance to the triangle, from inside or out. Blends are faster
        # than torch.where here.
        second = (distance2[1] < distance2[0]).to(x.dtype)
        nearest = torch.minimum(distance2[0], distance2[1])
        third = (distance2[2] < nearest).to(x.dtype)
        nearest = torch.minimum(nearest, distance2[2])
        pick = lambda values: torch.lerp(torch.lerp(values[0], values[1], second), values[2], third)
        # Inside (delta = +1) when no sub-triangle has a positive area (all kept faces have a negative one).
        outside_margin = torch.maximum(torch.maximum(cross[0], cross[1]), cross[2])
        logit = torch.copysign(nearest, outside_margin).mul_(-1.0 / sigma)
        # SoftRas ignores pairs whose probability is below dist_eps.
        logit.masked_fill_(logit < -cutoff, -math.inf)
        coverage = x.new_zeros(num_pixels).index_add_(0, pixel, nnf.softplus(logit))
        # d coverage / d distance^2 = D * delta / sigma, times the -2 of d distance^2 / d vertex.
        slope = torch.copysign(torch.sigmoid(logit), logit).mul_(-2.0 / sigma)
        edge = torch.addcmul(second, third, 2.0 - second).int()  # 0, 1 or 2
        ctx.save_for_backward(pairs_face * 3 + edge, pixel, pick(t), pick(offset_x), pick(offset_y), slope)
        ctx.num_faces = x.shape[0]
        return coverage

    @staticmethod
    def backward(ctx, grad_coverage):
        edge, pixel, t, offset_x, offset_y, slope = ctx.saved_tensors
        # distance^2 = |p - a - t (b - a)|^2 with t stationary (or clamped): d/da = -2 (1 - t) offset and
        # d/db = -2 t offset. Sum per (face, edge) first; edge i runs from corner i to corner i + 1.
        weight = grad_coverage.index_select(0, pixel).mul_(slope)
        grads = []
        for offset in (offset_x, offset_y):
            weighted = offset * weight
            total = weighted.new_zeros(ctx.num_faces * 3).index_add_(0, edge, weighted).view(-1, 3)
            to_end = weighted.new_zeros(ctx.num_faces * 3).index_add_(0, edge, weighted.mul_(t)).view(-1, 3)
            grads.append(total - to_end + to_end.roll(1, dims=1))
        return grads[0], grads[1], None, None, None, None, None, None, None, None


def _rasterize_soft(
    screen_vertices, kept, kept_colors, background, image_size, max_pairs, sigma, gamma, dist_eps, z_near, z_far
) -> Fragments:
    batch = screen_vertices.shape[0]
    height, width = image_size
    num_pixels = batch * height * width
    dtype = screen_vertices.dtype
    cutoff = math.log(1.0 / dist_eps - 1.0)
    x, y, z = _gather_corners(screen_vertices, kept)
    # The empty sum keeps the output in the graph when no face is visible (a loss can still backprop).
    coverage = screen_vertices.new_zeros(num_pixels) + screen_vertices[..., :0].sum()
    colour_terms = []
    for start, stop in _chunks(kept, max_pairs):
        pairs = _expand_pairs(kept, start, stop, width, dtype)
        chunk = (x[start:stop], y[start:stop], kept.low[start:stop])
        coverage = coverage + _SoftCoverage.apply(
            *chunk, pairs.face, pairs.column, pairs.row, pairs.pixel, num_pixels, sigma, cutoff
        )
        if kept_colors is not None:
            colour_terms.append(
                _soft_colour_terms(*chunk, z[start:stop], kept_colors[start:stop], pairs, sigma, cutoff, z_near, z_far)
            )
    alpha = 1.0 - torch.exp(-coverage)

    rgb = None
    if kept_colors is not None:
        rgb = _aggregate_colours(colour_terms, background, num_pixels, gamma, kept_colors.shape[-1], coverage)
        rgb = rgb.view(batch, height, width, -1)
    return Fragments(alpha=alpha.view(batch, height, width), rgb=rgb)


def _soft_colour_terms(x, y, origin, z, colors, pairs, sigma, cutoff, z_near, z_far):
    """Per pair with a probability above ``dist_eps`` (autograd): pixel, ``log D``, normalised inverse
    depth and colour."""
    rows = _gather_rows(_face_table(x, y, origin), pairs.face)
    cross, _, _, _, distance2 = _edge_terms(rows, pairs.column, pairs.row)
    distance2 = torch.minimum(torch.minimum(distance2[0], distance2[1]), distance2[2])
    logit = torch.where(_inside(cross), distance2, -distance2) / sigma
    keep = (logit >= -cutoff).nonzero().squeeze(1)
    # Clamped barycentrics (the nearest point of the triangle, as SoftRas), perspective-correct.
    bary = _barycentrics([c[keep] for c in cross]).clamp_min(0.0)
    # All three clamped to 0 (a degenerate face): its centre, not 0/0 in the perspective correction below.
    bary = bary + (bary.sum(-1, keepdim=True) <= 0).to(bary.dtype) / 3.0
    bary = bary / bary.sum(-1, keepdim=True)
    face = pairs.face[keep].long()
    bary, depth = _perspective_correct(bary, z[face])
    colour = (bary[..., None] * colors[face]).sum(-2)
    depth_term = (z_far - depth) / (z_far - z_near)
    return pairs.pixel[keep].long(), nnf.logsigmoid(logit[keep]), depth_term, colour


def _aggregate_colours(terms, background, num_pixels, gamma, channels, like):
    """SoftRas colour: ``(sum_j w_j c_j + w_b c_b) / (sum_j w_j + w_b)``, ``w_j = D_j exp(z_j / gamma)``,
    ``w_b = exp(eps / gamma)``, evaluated with a per-pixel max subtracted from the exponents."""
    if terms:
        pixel, log_probability, depth_term, colour = (torch.cat(parts) for parts in zip(*terms))
    else:
        pixel = torch.empty(0, dtype=torch.long, device=like.device)
        log_probability = depth_term = like.new_empty(0)
        colour = like.new_empty(0, channels)
    exponent = log_probability + depth_term / gamma
    background_exponent = _SOFTRAS_BACKGROUND_EPS / gamma
    with torch.no_grad():
        shift = like.new_full((num_pixels,), background_exponent)
        shift.scatter_reduce_(0, pixel, exponent, "amax")
    weight = torch.exp(exponent - shift[pixel])
    background_weight = torch.exp(background_exponent - shift)
    total = background_weight.index_add(0, pixel, weight)
    numerator = (background_weight[:, None] * background.expand(num_pixels, -1)).index_add(
        0, pixel, weight[:, None] * colour
    )
    return numerator / total[:, None]


def _background(background_color, colors: torch.Tensor, image_shape: tuple[int, int, int]) -> torch.Tensor:
    """The background as (1, C) or (B * H * W, C)."""
    channels = colors.shape[-1]
    background = torch.as_tensor(background_color, dtype=colors.dtype, device=colors.device)
    if background.ndim <= 1:
        return background.expand(channels)[None]
    if tuple(background.shape) != (*image_shape, channels):
        raise ValueError(
            f"background_color must be a float, ({channels},) or {(*image_shape, channels)}, "
            f"got {tuple(background.shape)}"
        )
    return background.reshape(-1, channels)


def _face_vertex_colors(screen_vertices, faces, vertex_colors, face_colors) -> torch.Tensor | None:
    """(B, F, 3, C) colour of each face corner, or None without colours."""
    if vertex_colors is not None and face_colors is not None:
        raise ValueError("give vertex_colors or face_colors, not both")
    batch, num_vertices = screen_vertices.shape[:2]
    if vertex_colors is not None:
        if vertex_colors.ndim not in (2, 3) or vertex_colors.shape[-2] != num_vertices:
            raise ValueError(f"vertex_colors must be (B, {num_vertices}, C) or ({num_vertices}, C), "
                             f"got {tuple(vertex_colors.shape)}")
        vertex_colors = vertex_colors.to(screen_vertices.device)
        return vertex_colors.expand(batch, *vertex_colors.shape[-2:])[:, faces]
    if face_colors is not None:
        if face_colors.ndim not in (2, 3) or face_colors.shape[-2] != faces.shape[0]:
            raise ValueError(f"face_colors must be (B, {faces.shape[0]}, C) or ({faces.shape[0]}, C), "
                             f"got {tuple(face_colors.shape)}")
        face_colors = face_colors.to(screen_vertices.device)
        return face_colors.expand(batch, *face_colors.shape[-2:])[:, :, None].expand(-1, -1, 3, -1)
    return None
