"""The ground of a static camera, from the people standing on it: a plane, and people's positions on it.

A body's monocular depth comes from its size in the image, and it jitters: for a person 26 px tall, one pixel is 4%
of the depth, metres at 60 m (benchmarks/README.md, "The ground plane"). Where the feet meet the ground is seen far more
steadily. :func:`fit_ground_plane` fits the ground once many feet have been seen (their 3D positions: noisy one by
one, right on average), and :meth:`GroundPlane.intersect` then places each person where the ray through the bottom
of their box meets it: a position on the ground whose error grows with the box's pixel error, not with the size's.
:class:`GroundEstimator` gathers the feet of a video's frames and refits the plane as they accumulate.

Axes are the camera's (OpenCV: x right, y down, z forward), metres. The plane is ``y = a x + b z + c``: any camera
that is not looking straight down at the ground.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["GroundConfig", "GroundPlane", "GroundEstimator", "fit_ground_plane"]


@dataclass(frozen=True)
class GroundConfig:
    """Settings of :class:`GroundEstimator`.

    Attributes:
        min_points: feet needed before the plane is fitted.
        max_points: the most feet kept (the latest).
        min_box_height: people with shorter boxes (px) give no foot point: their depth is too uncertain.
        max_depth: foot points farther than this (metres) are left out, as are those behind the camera.
    """

    min_points: int = 100
    max_points: int = 4000
    min_box_height: float = 30.0
    max_depth: float = 200.0

    def __post_init__(self) -> None:
        if self.min_points < 3 or self.max_points < self.min_points:
            raise ValueError(f"need 3 <= min_points <= max_points, got {self.min_points} and {self.max_points}")
        if not self.min_box_height >= 0 or not self.max_depth > 0:
            raise ValueError(f"min_box_height must be >= 0 and max_depth positive, got {self.min_box_height} and "
                             f"{self.max_depth}")


@dataclass(frozen=True)
class GroundPlane:
    """The plane ``y = a x + b z + c`` in camera axes (metres), with ``c > 0``: the camera is above it.

    Ground coordinates are ``(across, away)``: metres along the camera's x axis laid on the plane, and along the
    plane's direction away from the camera.
    """

    a: float
    b: float
    c: float

    @property
    def up(self) -> np.ndarray:
        """(3,) unit normal pointing up, towards the camera's side (its y is negative)."""
        normal = np.array([self.a, -1.0, self.b])
        return normal / np.linalg.norm(normal)

    @property
    def height(self) -> float:
        """The camera's height above the plane (metres)."""
        return float(self.c / np.linalg.norm([self.a, -1.0, self.b]))

    @property
    def tilt_deg(self) -> float:
        """How far the camera looks down at the plane (negative: up), degrees."""
        return float(np.degrees(np.arcsin(np.clip(-self.up[2], -1.0, 1.0))))

    def basis(self) -> tuple[np.ndarray, np.ndarray]:
        """Two (3,) unit vectors on the plane: ``across`` (the camera's x axis laid on it) and ``away``."""
        up = self.up
        across = np.array([1.0, 0.0, 0.0]) - up * up[0]
        across /= np.linalg.norm(across)
        away = np.cross(up, across)
        return across, away if away[2] >= 0 else -away

    def intersect(self, pixels: np.ndarray, focal: float, principal_point) -> np.ndarray:
        """(..., 2) image pixels -> (..., 3) points where their camera rays meet the plane; NaN for rays at or above
        the horizon (they never meet it in front of the camera)."""
        pixels = np.asarray(pixels, np.float64)
        centre = np.asarray(principal_point, np.float64)
        rays = np.concatenate([(pixels - centre) / float(focal), np.ones_like(pixels[..., :1])], axis=-1)
        below = rays[..., 1] - self.a * rays[..., 0] - self.b  # > 0 for rays that go down to the plane
        depth = np.where(below > 1e-6, self.c / np.where(below > 1e-6, below, 1.0), np.nan)
        return rays * depth[..., None]

    def coordinates(self, points: np.ndarray) -> np.ndarray:
        """(..., 3) camera points -> (..., 2) ground coordinates ``(across, away)`` of their feet on the plane."""
        across, away = self.basis()
        points = np.asarray(points, np.float64)
        return np.stack([points @ across, points @ away], axis=-1)

    def direction(self, vectors: np.ndarray) -> np.ndarray:
        """(..., 3) camera directions -> (..., 2) unit directions on the plane; zero for vertical ones."""
        flat = self.coordinates(vectors)
        norm = np.linalg.norm(flat, axis=-1, keepdims=True)
        return np.where(norm > 1e-6, flat / np.where(norm > 1e-6, norm, 1.0), 0.0)


def fit_ground_plane(points: np.ndarray) -> GroundPlane:
    """A robust plane through (N, 3) camera points of feet on the ground (N >= 3).

    Each point's depth comes from a size in the image, so it is wrong by a factor along its camera ray:
    ``p' = (1 + e) p``. For the plane ``y = a x + b z + c`` that makes ``(y' - a x' - b z') / c - 1 = e`` exactly, so
    that is the residual (linear in ``1/c, a/c, b/c``), and scipy's Cauchy loss keeps the few wild points (a
    fit gone wrong, a person on stairs) from tilting the plane.
    """
    from scipy.optimize import least_squares

    points = np.asarray(points, np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or len(points) < 3:
        raise ValueError(f"expected (N >= 3, 3) points, got {points.shape}")
    if not (np.isfinite(points).all() and (points[:, 2] > 0).all()):
        raise ValueError("ground points must be finite and in front of the camera (z > 0)")
    design = np.column_stack([points[:, 1], -points[:, 0], -points[:, 2]])  # times (1/c, a/c, b/c), minus 1

    def residuals(coef: np.ndarray) -> np.ndarray:
        return design @ coef - 1.0

    start = np.linalg.lstsq(design, np.ones(len(points)), rcond=None)[0]
    scale = max(float(np.median(np.abs(residuals(start)))), 1e-3)
    inverse_c, a_over_c, b_over_c = least_squares(residuals, start, loss="cauchy", f_scale=scale).x
    if not inverse_c > 0:
        raise ValueError("the feet do not lie below the camera (fitted plane above it)")
    c = 1.0 / float(inverse_c)
    return GroundPlane(float(a_over_c) * c, float(b_over_c) * c, c)


class GroundEstimator:
    """The ground of one video's camera, from the feet of the people it has seen so far.

    Args:
        config: :class:`GroundConfig`.
    """

    def __init__(self, config: GroundConfig | None = None) -> None:
        self.config = config or GroundConfig()
        self._points: list[np.ndarray] = []
        self._fitted_at = 0
        self.plane: GroundPlane | None = None

    def add(self, feet: np.ndarray, box_heights: np.ndarray) -> GroundPlane | None:
        """Record (N, 3) camera points of people's feet with their (N,) box heights (px); the plane is refitted when
        the feet seen have doubled since the last fit (so it settles as they accumulate). Returns :attr:`plane`."""
        feet = np.asarray(feet, np.float64).reshape(-1, 3)
        heights = np.asarray(box_heights, np.float64).reshape(-1)
        if len(heights) != len(feet):
            raise ValueError(f"got {len(feet)} feet and {len(heights)} box heights")
        usable = (np.isfinite(feet).all(axis=1) & (feet[:, 2] > 0) & (feet[:, 2] <= self.config.max_depth)
                  & (heights >= self.config.min_box_height))
        self._points.extend(feet[usable])
        del self._points[:-self.config.max_points]
        seen = len(self._points)
        if seen >= self.config.min_points and (self.plane is None or seen >= 2 * self._fitted_at):
            try:
                self.plane = fit_ground_plane(np.stack(self._points))
            except ValueError:
                pass  # people not on one ground below the camera (yet): keep what was there
            self._fitted_at = seen
        return self.plane
