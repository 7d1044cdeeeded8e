import math

import pytest
import torch

from lowres_hps.models.codecs import CALCodec, GaussianMixture, fit_gmm, gmm_log_density, mixed_gaussian_masks
from lowres_hps.models.codecs.gmm import mgm_half_width

MIXTURES = {
    1: ([1.0], [[0.5, -0.3]], [[[0.3, 0.1], [0.1, 0.2]]]),
    2: ([0.6, 0.4], [[-3.0, 0.0], [3.0, 1.0]], [[[0.5, 0.0], [0.0, 0.3]], [[0.3, -0.1], [-0.1, 0.4]]]),
    3: ([0.3, 0.3, 0.4], [[-4.0, 0.0], [4.0, 0.0], [0.0, 5.0]],
        [[[0.4, 0.0], [0.0, 0.4]], [[0.3, 0.1], [0.1, 0.3]], [[0.5, 0.0], [0.0, 0.2]]]),
}


def sample_mixture(num_components, n, dtype=torch.float64, seed=0):
    weights, means, covariances = (torch.tensor(v, dtype=torch.float64) for v in MIXTURES[num_components])
    g = torch.Generator().manual_seed(seed)
    labels = torch.multinomial(weights, n, replacement=True, generator=g)
    chol = torch.linalg.cholesky(covariances)
    noise = torch.randn(n, 2, 1, generator=g, dtype=torch.float64)
    points = means[labels] + (chol[labels] @ noise)[..., 0]
    return points.to(dtype), GaussianMixture(weights, means, covariances)


def match_components(fitted: GaussianMixture, truth: GaussianMixture) -> torch.Tensor:
    """Index of the fitted component nearest to each true mean."""
    return torch.cdist(truth.means, fitted.means.to(truth.means)).argmin(dim=1)


@pytest.mark.parametrize("num_components", [1, 2, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_recovers_synthetic_mixtures(num_components, dtype, device):
    points, truth = sample_mixture(num_components, 3000, dtype)
    fitted = fit_gmm(points.to(device), num_components)
    assert all(t.dtype == dtype and t.device.type == device.type for t in fitted)
    fitted = GaussianMixture(*(t.cpu().double() for t in fitted))
    order = match_components(fitted, truth)
    assert sorted(order.tolist()) == list(range(num_components))
    assert torch.allclose(fitted.means[order], truth.means, atol=0.06)
    assert torch.allclose(fitted.weights[order], truth.weights, atol=0.03)
    assert torch.allclose(fitted.covariances[order], truth.covariances, atol=0.06)
    assert torch.allclose(fitted.weights.sum(), torch.tensor(1.0, dtype=torch.float64))
    assert torch.allclose(fitted.covariances, fitted.covariances.transpose(-1, -2))
    assert (torch.linalg.eigvalsh(fitted.covariances) > 0).all()


def test_single_component_is_the_sample_mean_and_covariance():
    points, _ = sample_mixture(1, 500)
    fitted = fit_gmm(points, 1, reg_covar=0.0)
    assert torch.allclose(fitted.means[0], points.mean(0))
    assert torch.allclose(fitted.covariances[0], torch.cov(points.T, correction=0))


def test_deterministic_for_a_seed():
    points, _ = sample_mixture(3, 600, seed=5)
    first = fit_gmm(points, 3, generator=torch.Generator().manual_seed(3))
    second = fit_gmm(points, 3, generator=torch.Generator().manual_seed(3))
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    assert all(torch.equal(a, b) for a, b in zip(fit_gmm(points, 3), fit_gmm(points, 3)))


def test_log_density_integrates_to_one():
    mixture = GaussianMixture(*(torch.tensor(v, dtype=torch.float64) for v in MIXTURES[2]))
    steps = torch.linspace(-10, 10, 401, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(steps, steps, indexing="xy"), dim=-1)
    density = torch.exp(gmm_log_density(grid, mixture))
    assert density.shape == (401, 401)
    assert float(density.sum() * (steps[1] - steps[0]) ** 2) == pytest.approx(1.0, abs=1e-4)
    # A single standard normal at the origin: 1 / (2 pi).
    standard = GaussianMixture(torch.ones(1), torch.zeros(1, 2), torch.eye(2)[None])
    assert float(torch.exp(gmm_log_density(torch.zeros(2), standard))) == pytest.approx(1 / (2 * math.pi))


def test_matches_sklearn():
    mixture = pytest.importorskip("sklearn.mixture")
    points, _ = sample_mixture(2, 2000)
    reference = mixture.GaussianMixture(2, covariance_type="full", random_state=0).fit(points.numpy())
    fitted = fit_gmm(points, 2)
    order = torch.cdist(torch.from_numpy(reference.means_), fitted.means).argmin(dim=1)
    assert torch.allclose(fitted.means[order], torch.from_numpy(reference.means_), atol=1e-2)
    assert torch.allclose(fitted.covariances[order], torch.from_numpy(reference.covariances_), atol=1e-2)


def test_fit_gmm_rejects_bad_input():
    with pytest.raises(ValueError):
        fit_gmm(torch.zeros(5, 2), 0)
    with pytest.raises(ValueError):
        fit_gmm(torch.zeros(2, 2), 3)
    with pytest.raises(ValueError):
        fit_gmm(torch.tensor([[0.0, float("nan")], [1.0, 1.0]]), 1)


# ----------------------------------------------------------------------------- Mixed Gaussian Masks


def peaked_heatmaps(peaks_xy, size, dtype=torch.float32):
    """(B, K, h, w) heatmaps with a single maximum at integer ``peaks_xy`` (B, K, 2)."""
    h, w = size
    heatmaps = torch.zeros(*peaks_xy.shape[:2], h, w, dtype=dtype)
    b, k = torch.meshgrid(torch.arange(peaks_xy.shape[0]), torch.arange(peaks_xy.shape[1]), indexing="ij")
    heatmaps[b, k, peaks_xy[..., 1], peaks_xy[..., 0]] = 1.0
    return heatmaps


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_masks_shape_range_and_centring(dtype, device):
    g = torch.Generator().manual_seed(0)
    size, radius = (32, 24), 2.0
    keypoints_hm = (torch.rand(16, 10, 2, generator=g) * torch.tensor([15.0, 23.0]) + 4).to(dtype)
    # Predictions displaced by (+1, 0) px from the rounded joint, with small jitter in the sub-pixel joints.
    peaks = torch.floor(keypoints_hm + 0.5).long() + torch.tensor([1, 0])
    visible = torch.rand(16, 10, generator=g) > 0.2
    fallback = torch.full((16, 10, *size), -1.0, dtype=dtype)
    masks = mixed_gaussian_masks(peaked_heatmaps(peaks, size).to(device), keypoints_hm.to(device),
                                 visible.to(device), radius, 1, fallback_weights=fallback.to(device))
    assert masks.shape == (16, 10, *size) and masks.dtype == dtype and masks.device.type == device.type
    masks = masks.cpu()
    assert masks.min() >= 0 and masks.max() <= 1
    assert (masks[~visible] == 0).all()
    half = mgm_half_width(radius)
    for b, k in visible.nonzero().tolist():
        mask = masks[b, k]
        cx, cy = peaks[b, k].tolist()
        assert mask.max() == 1 and mask.argmax() == cy * size[1] + cx  # peak at round(y) + mean displacement
        ys, xs = (mask > 0).nonzero().unbind(1)
        centre_x, centre_y = peaks[b, k, 0] - 1, peaks[b, k, 1]
        assert (xs - centre_x).abs().max() <= half and (ys - centre_y).abs().max() <= half  # zero off the grid


def test_masks_are_the_normalised_gmm_density_on_the_grid():
    size, radius = (16, 12), 1.0
    g = torch.Generator().manual_seed(1)
    keypoints_hm = torch.rand(8, 4, 2, generator=g, dtype=torch.float64) * 6 + 3
    peaks = torch.floor(keypoints_hm + 0.5).long() + torch.randint(-1, 2, (8, 4, 2), generator=g)
    visible = torch.ones(8, 4, dtype=torch.bool)
    masks = mixed_gaussian_masks(peaked_heatmaps(peaks, size), keypoints_hm, visible, radius, 1,
                                 fallback_weights=torch.zeros(8, 4, *size, dtype=torch.float64))
    mixture = fit_gmm(peaks.double().reshape(-1, 2) - keypoints_hm.reshape(-1, 2), 1)
    steps = torch.arange(-1.0, 2.0, dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(steps, steps, indexing="xy"), dim=-1)
    imgm = torch.exp(gmm_log_density(grid, mixture))
    imgm = (imgm - imgm.min()) / (imgm.max() - imgm.min())
    cx, cy = torch.floor(keypoints_hm[2, 3] + 0.5).long().tolist()
    assert torch.allclose(masks[2, 3, cy - 1:cy + 2, cx - 1:cx + 2], imgm)
    assert masks[2, 3].sum() == pytest.approx(float(imgm.sum()))


def test_degenerate_batches_fall_back():
    size = (16, 12)
    keypoints_hm = torch.tensor([[[5.2, 6.7], [3.1, 8.8], [7.5, 2.2], [6.0, 6.0]]])
    fallback = torch.rand(1, 4, *size)
    peaks = torch.floor(keypoints_hm + 0.5).long()
    heatmaps = peaked_heatmaps(peaks, size)
    # Too few displacements (2 visible joints for 1 component).
    few = mixed_gaussian_masks(heatmaps, keypoints_hm, torch.tensor([[1, 1, 0, 0]]), 1.0,
                               fallback_weights=fallback)
    assert few is fallback
    # All displacements identical.
    integer_joints = peaks.float()
    same = mixed_gaussian_masks(heatmaps, integer_joints, torch.ones(1, 4), 1.0, fallback_weights=fallback)
    assert same is fallback
    # Enough distinct displacements: a real mask.
    real = mixed_gaussian_masks(heatmaps, keypoints_hm, torch.ones(1, 4), 1.0, fallback_weights=fallback)
    assert real is not fallback and real.max() == 1


def test_cal_stage_two_falls_back_to_gaussian_weights():
    codec = CALCodec((64, 48), radius=1.5)
    keypoints = torch.tensor([[[10.0, 20.0], [30.0, 40.0]]])
    targets = codec.encode(keypoints)
    masks = codec.mixed_gaussian_masks(targets.heatmaps, targets, num_components=1)
    assert torch.equal(masks, targets.offset_weights)


def test_half_width():
    assert [mgm_half_width(r) for r in (0.4, 0.875, 1.0, 1.75, 2.0, 3.5)] == [1, 1, 1, 2, 2, 4]


def test_mask_argument_checks():
    heatmaps = torch.zeros(2, 3, 16, 12)
    fallback = torch.zeros(2, 3, 16, 12)
    with pytest.raises(ValueError):
        mixed_gaussian_masks(heatmaps, torch.zeros(2, 3, 3), torch.ones(2, 3), 1.0, fallback_weights=fallback)
    with pytest.raises(ValueError):
        mixed_gaussian_masks(heatmaps, torch.zeros(2, 3, 2), torch.ones(2, 2), 1.0, fallback_weights=fallback)
    with pytest.raises(ValueError):
        mixed_gaussian_masks(heatmaps, torch.zeros(2, 3, 2), torch.ones(2, 3), 1.0, fallback_weights=fallback[:1])
    with pytest.raises(ValueError):
        mixed_gaussian_masks(heatmaps, torch.zeros(2, 3, 2), torch.ones(2, 3), 0.0, fallback_weights=fallback)
