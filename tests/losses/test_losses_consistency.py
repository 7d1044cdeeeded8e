"""RSC-Net consistency losses: pair weights, self-supervision, feature losses and the negatives queue."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lowres_hps.losses.consistency import (
    FeatureQueue,
    feature_consistency_loss,
    pair_weights,
    self_supervision_loss,
)


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


def test_pair_weights_on_a_hand_example():
    ranges = torch.tensor([[0, 2, 4], [1, 1, 3]])
    directional = pair_weights(ranges, "directional")
    assert directional.shape == (2, 3, 3) and directional.dtype == torch.float32
    # w[b, i, j] = 1(r_j > r_i) (r_j - r_i): i teaches j.
    assert directional[0].tolist() == [[0, 2, 4], [0, 0, 2], [0, 0, 0]]
    assert directional[1].tolist() == [[0, 0, 2], [0, 0, 2], [0, 0, 0]]
    symmetric = pair_weights(ranges, "symmetric")
    assert symmetric[0].tolist() == [[0, 1, 1], [1, 0, 1], [1, 1, 0]]
    assert symmetric[1].tolist() == [[0, 0, 1], [0, 0, 1], [1, 1, 0]]  # equal ranges are no pair
    highest = pair_weights(ranges, "highest")
    assert highest[0].tolist() == [[0, 2, 4], [0, 0, 0], [0, 0, 0]]
    assert highest[1].tolist() == [[0, 0, 2], [0, 0, 2], [0, 0, 0]]  # both highest-resolution images teach
    with pytest.raises(ValueError, match="form must be one of"):
        pair_weights(ranges, "both")
    with pytest.raises(ValueError, match=r"\(B, A\)"):
        pair_weights(ranges[0], "directional")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_self_supervision_value_and_zero_for_identical_outputs(dtype):
    weights = pair_weights(torch.tensor([[0, 2, 4]]))
    outputs = torch.tensor([[[0.0], [1.0], [3.0]]], dtype=dtype)
    # Pairs (0,1), (0,2), (1,2) with weights 2, 4, 2 and squared gaps 1, 9, 4; mean over the 3 pairs.
    loss = self_supervision_loss(outputs, weights)
    assert loss.dtype == dtype
    assert loss.item() == pytest.approx((2 * 1 + 4 * 9 + 2 * 4) / 3)
    same = torch.randn(1, 1, 5, dtype=dtype).expand(2, 3, 5)
    assert self_supervision_loss(same, pair_weights(torch.tensor([[0, 1, 2], [0, 3, 4]]))).item() == 0.0
    # No pair with a weight (all resolutions equal): 0, not NaN.
    assert self_supervision_loss(torch.randn(1, 2, 4), pair_weights(torch.tensor([[2, 2]]))).item() == 0.0


def test_self_supervision_gradient_reaches_only_the_student_when_detached():
    weights = pair_weights(torch.tensor([[0, 3]]))
    outputs = torch.randn(1, 2, 4, requires_grad=True)
    self_supervision_loss(outputs, weights).backward()
    assert outputs.grad[0, 0].abs().sum() == 0 and outputs.grad[0, 1].abs().sum() > 0
    outputs.grad = None
    self_supervision_loss(outputs, pair_weights(torch.tensor([[0, 3]]), "symmetric"), detach_targets=False).backward()
    assert outputs.grad[0, 0].abs().sum() > 0 and outputs.grad[0, 1].abs().sum() > 0
    with pytest.raises(ValueError, match=r"outputs \(B, A, D\) and weights \(B, A, A\)"):
        self_supervision_loss(outputs, weights[:, :1])


def _with_fixed_teacher(loss_fn, teacher: torch.Tensor):
    """A function of the lower-resolution (student) features only, the teacher being a constant."""
    return lambda student: loss_fn(torch.stack([teacher, student], dim=1))


def test_self_supervision_gradcheck_wrt_the_student():
    weights = pair_weights(torch.tensor([[0, 2], [1, 4]]))
    teacher = torch.randn(2, 5, dtype=torch.float64)
    student = torch.randn(2, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(_with_fixed_teacher(lambda o: self_supervision_loss(o, weights), teacher),
                                    (student,))


def test_feature_losses_mse_and_cosine_values():
    weights = pair_weights(torch.tensor([[0, 1]]))
    features = torch.tensor([[[1.0, 0.0], [1.0, 1.0]]])
    mse = feature_consistency_loss(features, weights, "mse")
    assert mse.item() == pytest.approx(0.5)  # mean over F of (0, 1)^2, weight 1, one pair
    cosine = feature_consistency_loss(features, weights, "cosine")
    assert cosine.item() == pytest.approx(1 - 2**-0.5)
    # Cosine ignores the scale of the student; MSE does not.
    scaled = features * torch.tensor([1.0, 3.0])[None, :, None]
    assert feature_consistency_loss(scaled, weights, "cosine").item() == pytest.approx(cosine.item())
    assert feature_consistency_loss(scaled, weights, "mse").item() != pytest.approx(mse.item())
    with pytest.raises(ValueError, match="feature loss must be one of"):
        feature_consistency_loss(features, weights, "l1")
    with pytest.raises(ValueError, match=r"features \(B, A, F\)"):
        feature_consistency_loss(features[0], weights)


def test_contrastive_without_negatives_is_zero():
    features = torch.randn(2, 3, 8)
    weights = pair_weights(torch.tensor([[0, 1, 2], [0, 2, 4]]))
    assert feature_consistency_loss(features, weights, "contrastive").item() == 0.0
    assert feature_consistency_loss(features, weights, "contrastive", queue=FeatureQueue(8, 4)).item() == 0.0


def test_contrastive_equals_a_hand_computed_cross_entropy():
    temperature = 0.1
    features = torch.randn(1, 3, 4, dtype=torch.float64)
    ranges = torch.tensor([[0, 1, 3]])
    weights = pair_weights(ranges)  # (0,1): 1, (0,2): 3, (1,2): 2
    queue = FeatureQueue(4, size=8)
    negatives = torch.randn(5, 4)
    queue.enqueue(negatives)
    loss = feature_consistency_loss(features, weights, "contrastive", queue, temperature)
    unit = F.normalize(features[0], dim=-1)
    queued = F.normalize(negatives.double(), dim=-1).float().double()  # the queue stores float32
    expected = []
    for (i, j), w in (((0, 1), 1.0), ((0, 2), 3.0), ((1, 2), 2.0)):
        logits = torch.cat([(unit[i] @ unit[j])[None], queued @ unit[j]]) / temperature
        expected.append(w * F.cross_entropy(logits[None], torch.tensor([0])))
    assert loss.item() == pytest.approx(float(sum(expected) / 3), rel=1e-6)
    # More alike positive pairs give a smaller loss.
    aligned = features.clone()
    aligned[0, 1:] = features[0, 0]
    assert feature_consistency_loss(aligned, weights, "contrastive", queue, temperature) < loss


@pytest.mark.parametrize("kind", ["contrastive", "mse", "cosine"])
def test_feature_losses_gradcheck_and_detached_teacher(kind):
    weights = pair_weights(torch.tensor([[0, 2], [1, 3]]))
    queue = FeatureQueue(6, size=16)
    queue.enqueue(torch.randn(10, 6))
    teacher = torch.randn(2, 6, dtype=torch.float64)
    student = torch.randn(2, 6, dtype=torch.float64, requires_grad=True)
    loss_fn = _with_fixed_teacher(lambda f: feature_consistency_loss(f, weights, kind, queue, 0.5), teacher)
    assert torch.autograd.gradcheck(loss_fn, (student,))
    both = torch.stack([teacher, student.detach()], dim=1).requires_grad_(True)
    feature_consistency_loss(both, weights, kind, queue).backward()
    assert both.grad[:, 0].abs().sum() == 0 and both.grad[:, 1].abs().sum() > 0


def rows(*angles: float) -> torch.Tensor:
    """Unit 2D vectors at ``angles`` (radians): distinct, recognisable queue entries."""
    angles = torch.tensor(angles)
    return torch.stack([torch.cos(angles), torch.sin(angles)], -1)


def test_feature_queue_is_a_fifo_with_wraparound():
    queue = FeatureQueue(2, size=4)
    assert queue.negatives().shape == (0, 2)
    queue.enqueue(3 * rows(0.1, 0.2, 0.3))  # normalised on the way in
    torch.testing.assert_close(queue.negatives(), rows(0.1, 0.2, 0.3))
    queue.enqueue(rows(0.4, 0.5))  # fills the last slot, then overwrites the oldest
    assert queue.count == 4 and queue.pointer == 1
    torch.testing.assert_close(queue.features, rows(0.5, 0.2, 0.3, 0.4))
    queue.enqueue(rows(0.6, 0.7, 0.8, 0.9, 1.0, 1.1))  # more than the queue holds: the newest 4
    torch.testing.assert_close(queue.features[[1, 2, 3, 0]], rows(0.8, 0.9, 1.0, 1.1))
    # negatives() is a copy: enqueueing does not change what an earlier loss used.
    before = queue.negatives()
    queue.enqueue(rows(2.0))
    assert not torch.equal(before, queue.negatives())
    with pytest.raises(ValueError, match="positive"):
        FeatureQueue(0, 4)
