"""Mesh overlays: shaded meshes blended over exactly their silhouettes, nearer people in front, windows."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from lowres_hps.render import render_silhouette
from lowres_hps.viz.mesh_overlay import draw_meshes, mesh_window

FOCAL, CENTRE, SIZE = 300.0, (79.5, 59.5), (120, 160)


def _sphere(centre, radius=0.5):
    mesh = trimesh.creation.icosphere(subdivisions=3, radius=radius)
    return (mesh.vertices + np.asarray(centre)).astype(np.float32), np.asarray(mesh.faces)


def _background(seed=0):
    return np.random.default_rng(seed).integers(0, 256, (*SIZE, 3), dtype=np.uint8)


def _silhouette(vertices, faces):
    mask = render_silhouette(torch.as_tensor(vertices)[None], torch.as_tensor(faces), FOCAL,
                             torch.tensor(CENTRE), SIZE, mode="hard")
    return mask[0].numpy() > 0


def test_mesh_colours_its_silhouette_and_nothing_else():
    vertices, faces = _sphere((0.3, -0.2, 4.0))
    image = _background()
    drawn = draw_meshes(image, [vertices], faces, FOCAL, CENTRE, alpha=0.6)
    silhouette = _silhouette(vertices, faces)  # rasterized over the whole frame
    assert 500 < silhouette.sum() < 5000
    changed = (drawn != image).any(-1)
    np.testing.assert_array_equal(drawn[~silhouette], image[~silhouette])  # outside: untouched
    assert changed[silhouette].mean() > 0.98  # inside: blended (a few pixels may round back to themselves)
    # Opaque: the shaded colour itself, the same wherever the background differs.
    opaque = draw_meshes(image, [vertices], faces, FOCAL, CENTRE, alpha=1.0)
    np.testing.assert_array_equal(opaque[silhouette], draw_meshes(_background(1), [vertices], faces, FOCAL, CENTRE,
                                                                  alpha=1.0)[silhouette])
    np.testing.assert_array_equal(draw_meshes(image, [vertices], faces, FOCAL, CENTRE, alpha=0.0), image)


def test_nearer_meshes_hide_farther_ones():
    far_vertices, faces = _sphere((0.0, 0.0, 6.0), radius=0.8)
    near_vertices, _ = _sphere((0.2, 0.0, 3.0), radius=0.3)
    image = np.zeros((*SIZE, 3), np.uint8)
    red, blue = (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)
    both = draw_meshes(image, [near_vertices, far_vertices], faces, FOCAL, CENTRE, alpha=1.0, colors=[red, blue])
    reversed_order = draw_meshes(image, [far_vertices, near_vertices], faces, FOCAL, CENTRE, alpha=1.0,
                                 colors=[blue, red])
    np.testing.assert_array_equal(both, reversed_order)  # depth decides, not the drawing order
    near = _silhouette(near_vertices, faces)
    far_only = _silhouette(far_vertices, faces) & ~near
    assert near.sum() > 100 and far_only.sum() > 100
    assert (both[near][:, 2] == 0).all() and (both[near][:, 0] > 0).mean() > 0.95
    assert (both[far_only][:, 0] == 0).all() and (both[far_only][:, 2] > 0).mean() > 0.95


def test_meshes_behind_or_beside_the_camera_draw_nothing():
    image = _background()
    behind, faces = _sphere((0.0, 0.0, -3.0))
    aside, _ = _sphere((50.0, 0.0, 3.0))
    np.testing.assert_array_equal(draw_meshes(image, [behind, aside], faces, FOCAL, CENTRE), image)
    np.testing.assert_array_equal(draw_meshes(image, [], faces, FOCAL, CENTRE), image)
    assert mesh_window(np.array([[10.0, 10.0]]), np.array([-1.0]), SIZE) is None
    assert mesh_window(np.array([[-5.2, 3.5], [20.1, 200.0]]), np.array([2.0, 2.0]), SIZE) == (0, 3, 22, 120)


def test_an_anny_mesh_in_a_person_box(anny_body):
    # A person ~150 px tall in a 480 x 640 frame: drawn inside its own window only.
    output = anny_body.forward_vector(anny_body.pose_spec.rest_vector(1))
    rotation = torch.diag(torch.tensor([1.0, -1.0, -1.0]))  # upright, facing the camera
    vertices = (output.vertices[0] @ rotation.T + torch.tensor([0.0, 0.0, 6.0])).numpy()
    focal, centre = 550.0, (319.5, 239.5)
    image = np.full((480, 640, 3), 40, np.uint8)
    drawn = draw_meshes(image, [vertices], output.faces.numpy(), focal, centre)
    rows, columns = np.nonzero((drawn != image).any(-1))
    assert 120 < rows.max() - rows.min() < 180
    pixels = focal * vertices[:, :2] / vertices[:, 2:] + np.asarray(centre)
    assert rows.min() >= pixels[:, 1].min() - 1 and rows.max() <= pixels[:, 1].max() + 1
    assert columns.min() >= pixels[:, 0].min() - 1 and columns.max() <= pixels[:, 0].max() + 1


def test_errors_are_clear():
    vertices, faces = _sphere((0.0, 0.0, 4.0))
    with pytest.raises(ValueError, match="uint8"):
        draw_meshes(_background().astype(np.float32), [vertices], faces, FOCAL, CENTRE)
    with pytest.raises(ValueError, match="alpha"):
        draw_meshes(_background(), [vertices], faces, FOCAL, CENTRE, alpha=1.5)
    with pytest.raises(ValueError, match="faces must be"):
        draw_meshes(_background(), [vertices], faces[:, :2], FOCAL, CENTRE)
    with pytest.raises(ValueError, match=r"vertices must be \(V, 3\)"):
        draw_meshes(_background(), [vertices[:, :2]], faces, FOCAL, CENTRE)
    with pytest.raises(ValueError, match="2 meshes"):
        draw_meshes(_background(), [vertices, vertices], faces, FOCAL, CENTRE, colors=[(1.0, 0.0, 0.0)])
