"""HMR's iterative error feedback regressor: starts at the mean, refines by iterations, checks its inputs."""
from __future__ import annotations

import pytest
import torch

from lowres_hps.models.heads.iterative_regressor import IterativeRegressor


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


def test_zero_update_returns_the_mean_params():
    head = IterativeRegressor(feature_dim=8, param_dim=5, iterations=3, hidden=16).eval()
    mean = torch.arange(5.0)
    head.set_mean_params(mean)
    with torch.no_grad():
        head.mlp[-1].weight.zero_()
        out = head(torch.randn(4, 8))
    assert out.shape == (4, 5)
    torch.testing.assert_close(out, mean.expand(4, 5))
    # The freshly initialised head starts near the mean (small last layer).
    fresh = IterativeRegressor(feature_dim=8, param_dim=5, hidden=16).eval()
    with torch.no_grad():
        assert fresh(torch.randn(4, 8)).abs().max() < 0.1


def test_iterations_feed_the_estimate_back():
    head = IterativeRegressor(feature_dim=3, param_dim=2, iterations=4, hidden=8, dropout=0.0).double().eval()
    features = torch.randn(2, 3, dtype=torch.float64)
    with torch.no_grad():
        expected = head.mean_params.expand(2, -1)
        for _ in range(4):
            expected = expected + head.mlp(torch.cat([features, expected], dim=1))
        torch.testing.assert_close(head(features), expected)
        head.iterations = 1
        one_step = head.mean_params + head.mlp(torch.cat([features, head.mean_params.expand(2, -1)], dim=1))
        torch.testing.assert_close(head(features), one_step)


def test_mean_params_are_saved_with_the_weights():
    head = IterativeRegressor(feature_dim=4, param_dim=3, hidden=8)
    head.set_mean_params(torch.tensor([1.0, 2.0, 3.0]))
    other = IterativeRegressor(feature_dim=4, param_dim=3, hidden=8)
    other.load_state_dict(head.state_dict())
    torch.testing.assert_close(other.mean_params, torch.tensor([1.0, 2.0, 3.0]))


def test_gradcheck_float64():
    head = IterativeRegressor(feature_dim=3, param_dim=2, iterations=2, hidden=4, dropout=0.0).double().eval()
    with torch.no_grad():
        head.mlp[-1].weight.normal_()  # larger updates so the feedback path matters
    features = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(head, (features,))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_follows_the_feature_dtype_and_device(dtype, device):
    head = IterativeRegressor(feature_dim=4, param_dim=3, hidden=8).to(device, dtype).eval()
    out = head(torch.randn(2, 4, dtype=dtype, device=device))
    assert out.dtype == dtype and out.device.type == device.type


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="iterations"):
        IterativeRegressor(4, 3, iterations=0)
    head = IterativeRegressor(4, 3, hidden=8)
    with pytest.raises(ValueError, match=r"mean params must be \(3,\)"):
        head.set_mean_params(torch.zeros(4))
    with pytest.raises(ValueError, match=r"mean params must be \(3,\)"):
        head.set_mean_params(torch.zeros(1, 3))
    with pytest.raises(ValueError, match=r"features must be \(B, F\)"):
        head(torch.zeros(4))
