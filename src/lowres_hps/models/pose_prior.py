"""Learned pose prior: an adversarial auto-encoder (Makhzani et al., 2015) over the body joints' rotations.

The silhouette-topology adaptation paper (Section 3.4 a) keeps poses plausible by letting them vary only
through a latent ``phi in [-1, 1]^32`` whose frozen decoder ``Psi`` generates the pose. Here:

* the **encoder** reads the rotations of the body joints of a pose vector (every regressed joint but the
  root, as 6D; Anny: 19 x 6 = 114 numbers) and gives a ``tanh`` latent (..., 32). Its pre-activations are
  batch-normalised (no affine) and scaled by 0.8 before the ``tanh``: ``tanh(0.8 x)`` of a standard normal ``x``
  is close to uniform on [-1, 1] (``2 Phi(x) - 1 = erf(x / sqrt 2) ~ tanh(0.8 x)``), so every latent dimension
  starts spread like the prior and the adversary only has the rest to correct. Without it (SynthLR poses, same
  steps) the encoder's ``tanh`` saturated or its latents crowded into a small part of the box that uniform
  draws rarely visit, and the held-out error stayed at 8-18 degrees instead of about 5;
* the **decoder** turns a latent into one 6D rotation per body joint, made a valid rotation by
  Gram-Schmidt (:func:`~lowres_hps.geometry.rotations.rotation_6d_to_matrix`) and read back as 6D;
* the **discriminator** (latent -> one logit) is only used in training, to make encoded latents look like
  uniform draws from ``[-1, 1]^32`` (:func:`lowres_hps.methods.pose_prior.fit_pose_prior`), so that any
  latent of the box decodes to a plausible pose.

The root rotation (the view) and the shape are not the prior's business: :meth:`PosePrior.compose` puts
decoded body joints into a pose vector and keeps its root and shape as they are.

A prior is one ``.safetensors`` file (:func:`save_pose_prior`): its weights and a card as JSON in the
metadata (config, training data, steps, date, held-out reconstruction error, what the poses cover). The card
has the fields of the registry's model card (:class:`lowres_hps.apis.registry.ModelCard`) with task
``"pose_prior"``, so a prior in a weights folder is listed by ``lowres-hps models`` instead of breaking it.
The packaged prior (:data:`PRIOR_WEIGHTS`) is written by ``python scripts/train_pose_prior.py``.
"""
from __future__ import annotations

import datetime
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import roma
import torch
from torch import nn

from lowres_hps.body.pose import RegressionPoseSpec, get_pose_spec
from lowres_hps.core.checks import check_shape
from lowres_hps.geometry.rotations import matrix_to_rotation_6d, rotation_6d_to_matrix
from lowres_hps.models.weights import PACKAGE_WEIGHTS_DIR, weights_dirs

__all__ = [
    "PosePriorConfig",
    "PosePrior",
    "save_pose_prior",
    "load_pose_prior",
    "default_pose_prior",
    "PRIOR_FILENAME",
    "PRIOR_WEIGHTS",
    "POSE_PRIOR_TASK",
]

PRIOR_FILENAME = "anny_pose_prior.safetensors"
PRIOR_WEIGHTS = PACKAGE_WEIGHTS_DIR / PRIOR_FILENAME
"""The packaged Anny pose prior (written by ``python scripts/train_pose_prior.py``)."""
POSE_PRIOR_TASK = "pose_prior"
"""The card's ``task`` of a pose prior file."""
# Same key as lowres_hps.apis.registry.CARD_METADATA_KEY (apis sits above models, so it is not imported).
_CARD_KEY = "lowres_hps.model_card"
_IDENTITY_6D = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)
_LATENT_GAIN = 0.8  # tanh(0.8 x), x ~ N(0, 1), is close to uniform on [-1, 1] (see the module docstring)


@dataclass
class PosePriorConfig:
    """Everything needed to rebuild a :class:`PosePrior`.

    Attributes:
        body_model: ``"anny"`` (default), ``"smpl"`` or ``"smplx"``: the pose vector (:mod:`lowres_hps.body.pose`).
        latent_size: size of the latent (the paper's 32).
        hidden: width of the hidden layers of the encoder, decoder and discriminator.
        layers: hidden layers per MLP.
        dropout: dropout after each hidden layer (training only).
    """

    body_model: str = "anny"
    latent_size: int = 32
    hidden: int = 512
    layers: int = 2
    dropout: float = 0.0

    def __post_init__(self) -> None:
        get_pose_spec(self.body_model)  # fails early on an unknown body model
        for name in ("latent_size", "hidden", "layers"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value}")
            setattr(self, name, int(value))
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def pose_spec(self) -> RegressionPoseSpec:
        return get_pose_spec(self.body_model)

    @property
    def num_body_joints(self) -> int:
        """Joints the prior models: every regressed joint but the root (Anny: 19)."""
        return self.pose_spec.num_joints - 1

    def to_dict(self) -> dict[str, Any]:
        from lowres_hps.core.config import dump_config

        return dump_config(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PosePriorConfig:
        from lowres_hps.core.config import load_config

        return load_config(data, cls)


def _mlp(inputs: int, hidden: int, layers: int, outputs: int, dropout: float) -> nn.Sequential:
    parts: list[nn.Module] = []
    width = inputs
    for _ in range(layers):
        parts += [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
        if dropout > 0:
            parts.append(nn.Dropout(dropout))
        width = hidden
    parts.append(nn.Linear(width, outputs))
    return nn.Sequential(*parts)


class PosePrior(nn.Module):
    """Adversarial auto-encoder of body joint rotations; see the module docstring.

    ``J`` below is ``config.num_body_joints`` (Anny 19), ``D`` the pose vector size (Anny 126), ``L`` the latent
    size (32). Every method takes any leading batch shape ``...`` (none, (B,), (B, C) ...).

    In train mode the encoder's batch norm uses the batch's statistics, so it needs more than one pose; a prior in
    eval mode (as :func:`load_pose_prior` gives) encodes single poses too.

    Attributes:
        card: the card read from its file by :func:`load_pose_prior` (``{}`` for a new prior).
    """

    def __init__(self, config: PosePriorConfig | None = None) -> None:
        super().__init__()
        self.config = config = config if config is not None else PosePriorConfig()
        self.spec = config.pose_spec
        joints, size = config.num_body_joints, config.latent_size
        self.encoder = _mlp(6 * joints, config.hidden, config.layers, size, config.dropout)
        self.latent_norm = nn.BatchNorm1d(size, affine=False)
        self.decoder = _mlp(size, config.hidden, config.layers, 6 * joints, config.dropout)
        self.discriminator = _mlp(size, config.hidden, config.layers, 1, config.dropout)
        # The decoder predicts an offset from the rest pose (identity rotations) and starts with small outputs:
        # Gram-Schmidt is well conditioned from the first step, and an untrained prior decodes near rest.
        with torch.no_grad():
            self.decoder[-1].weight.mul_(0.1)
            self.decoder[-1].bias.zero_()
        self.register_buffer("_rest_6d", torch.tensor(_IDENTITY_6D).repeat(joints), persistent=False)
        self.card: dict[str, Any] = {}

    @property
    def num_body_joints(self) -> int:
        return self.config.num_body_joints

    @property
    def latent_size(self) -> int:
        return self.config.latent_size

    def _dtype(self) -> torch.dtype:
        return self.decoder[-1].weight.dtype

    def _check_vector(self, pose_vector: torch.Tensor) -> None:
        check_shape(pose_vector, f"* {self.spec.vector_size}", f"{self.spec.model} pose_vector")

    def _check_latent(self, latent: torch.Tensor) -> None:
        check_shape(latent, f"* {self.latent_size}", "latent")

    def body_rotations(self, pose_vector: torch.Tensor) -> torch.Tensor:
        """(..., D) pose vector -> (..., J, 3, 3) rotations of its body joints (root excluded), orthonormalised."""
        self._check_vector(pose_vector)
        rot6d = pose_vector[..., 6: self.spec.rotation_size].unflatten(-1, (self.num_body_joints, 6))
        return rotation_6d_to_matrix(rot6d)

    def encode_rotations(self, rotations: torch.Tensor) -> torch.Tensor:
        """(..., J, 3, 3) body joint rotations -> (..., L) latent in [-1, 1]."""
        check_shape(rotations, f"* {self.num_body_joints} 3 3", "rotations")
        features = matrix_to_rotation_6d(rotations.to(self._dtype())).flatten(-2)
        batch = features.shape[:-1]
        pre = self.latent_norm(self.encoder(features.reshape(-1, features.shape[-1])))  # BatchNorm1d wants (N, L)
        return torch.tanh(_LATENT_GAIN * pre).reshape(batch + (self.latent_size,))

    def decode_rotations(self, latent: torch.Tensor) -> torch.Tensor:
        """(..., L) latent -> (..., J, 3, 3) body joint rotations (proper rotations: orthonormal, det 1)."""
        self._check_latent(latent)
        raw = self.decoder(latent.to(self._dtype())) + self._rest_6d
        return rotation_6d_to_matrix(raw.unflatten(-1, (self.num_body_joints, 6)))

    def encode(self, pose_vector: torch.Tensor) -> torch.Tensor:
        """(..., D) pose vector -> (..., L) latent in [-1, 1]; only the body joints are read (not root, shape)."""
        return self.encode_rotations(self.body_rotations(pose_vector))

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """(..., L) latent -> (..., J, 6) body joint rotations: 6D (:mod:`lowres_hps.body.pose`) of valid rotations."""
        return matrix_to_rotation_6d(self.decode_rotations(latent))

    def discriminate(self, latent: torch.Tensor) -> torch.Tensor:
        """(..., L) latent -> (...,) logit that it was drawn from the uniform prior on [-1, 1]^L (not encoded)."""
        self._check_latent(latent)
        return self.discriminator(latent.to(self._dtype())).squeeze(-1)

    def compose(self, latent: torch.Tensor, pose_vector: torch.Tensor) -> torch.Tensor:
        """The pose vector with its body joints replaced by ``decode(latent)``; root and shape kept exactly.

        Args:
            latent: (..., L).
            pose_vector: (..., D); leading shapes broadcast against the latent's.

        Returns:
            (..., D) in the pose vector's dtype.
        """
        self._check_vector(pose_vector)
        self._check_latent(latent)
        try:
            batch = torch.broadcast_shapes(latent.shape[:-1], pose_vector.shape[:-1])
        except RuntimeError:
            raise ValueError(f"latent {tuple(latent.shape)} and pose_vector {tuple(pose_vector.shape)} have batch "
                             f"shapes that do not broadcast") from None
        body = self.decode(latent).flatten(-2).to(pose_vector.dtype).expand(batch + (6 * self.num_body_joints,))
        pose_vector = pose_vector.expand(batch + pose_vector.shape[-1:])
        return torch.cat([pose_vector[..., :6], body, pose_vector[..., self.spec.rotation_size:]], dim=-1)

    def project(self, pose_vector: torch.Tensor) -> torch.Tensor:
        """(..., D) -> (..., D): the closest pose the prior generates, ``compose(encode(v), v)``."""
        return self.compose(self.encode(pose_vector), pose_vector)

    def reconstruction_error(self, pose_vector: torch.Tensor) -> torch.Tensor:
        """(..., D) -> (...,): mean geodesic angle (radians) over the body joints between a pose and its projection.

        A measure, not a training loss: its gradient is not finite where a joint is reconstructed exactly.
        """
        target = self.body_rotations(pose_vector).to(self._dtype())
        reconstructed = self.decode_rotations(self.encode_rotations(target))
        return roma.rotmat_geodesic_distance(reconstructed, target).mean(-1)

    def forward(self, pose_vector: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`project`."""
        return self.project(pose_vector)


# --- Files ---------------------------------------------------------------------------------------


def _card(prior: PosePrior, name: str, notes: dict[str, Any], weights_dtype: str) -> dict[str, Any]:
    """The prior's card; the registry's model card fields (``input_size`` ... ``scale_factor`` mean nothing for a
    prior) are filled so that ``lowres-hps models`` lists a prior found in a weights folder."""
    from lowres_hps import __version__

    protected = {"task", "architecture"} & set(notes)
    if protected:
        raise ValueError(f"notes must not set {sorted(protected)}: they come from the prior")
    card: dict[str, Any] = {
        "name": name, "task": POSE_PRIOR_TASK, "architecture": prior.config.to_dict(),
        "input_size": [0, 0], "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "convention": "",
        "codec": "", "codec_params": {}, "scale_factor": 1.0,
        "training_data": [], "licence": "unspecified", "metrics": {},
        "created": datetime.date.today().isoformat(), "lowres_hps_version": __version__, "notes": "",
        "weights_dtype": weights_dtype,
    }
    card.update(notes)
    try:
        card["metrics"] = {str(k): float(v) for k, v in dict(card["metrics"]).items()}
    except (TypeError, ValueError):
        raise ValueError(f"notes['metrics'] must map names to numbers, got {card['metrics']!r}") from None
    return card


def save_pose_prior(prior: PosePrior, path: str | os.PathLike, notes: dict[str, Any] | None = None, *,
                    half: bool = False) -> Path:
    """Write ``prior`` and its card to one ``.safetensors`` file (atomically).

    Args:
        prior: the prior (its discriminator is saved too, so that training can go on from the file).
        path: output file.
        notes: card fields, JSON-serialisable: ``training_data`` (list of sources with counts), ``metrics``
            (name -> number, e.g. ``heldout_error_deg``), ``steps``, ``covers``, ``does_not_cover``, ``notes``,
            ``name`` (default: the file's stem), anything else. The config, date and package version are added.
        half: store the weights in float16 (loaded back as float32).

    Returns:
        The path written.
    """
    import safetensors.torch

    from lowres_hps.core.io import atomic_write

    path = Path(path)
    notes = dict(notes or {})
    card = _card(prior, str(notes.pop("name", path.stem)), notes, "float16" if half else "float32")
    try:
        text = json.dumps(card)
    except TypeError as exc:
        raise ValueError(f"the card of a pose prior must be JSON-serialisable: {exc}") from None
    dtype = torch.float16 if half else torch.float32
    state = {k: v.detach().to("cpu", dtype if v.is_floating_point() else v.dtype).contiguous()
             for k, v in prior.state_dict().items()}  # BatchNorm's step count stays an integer
    with atomic_write(path) as tmp:
        safetensors.torch.save_file(state, str(tmp), metadata={_CARD_KEY: text})
    return path


def load_pose_prior(path: str | os.PathLike, device: torch.device | str | None = None) -> PosePrior:
    """The prior in a file written by :func:`save_pose_prior`, in eval mode, float32, its card in ``.card``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a safetensors file, not a pose prior, or its weights do not fit its config
            (the message names the file).
    """
    import safetensors.torch
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pose prior not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types for files that are not safetensors
        raise ValueError(f"{path} is not a pose prior: not a safetensors file ({exc})") from None
    try:
        card = json.loads(metadata[_CARD_KEY])
        task = card["task"]
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{path} is not a pose prior: it has no model card (metadata key {_CARD_KEY!r}); "
                         f"write priors with lowres_hps.models.pose_prior.save_pose_prior") from None
    if task != POSE_PRIOR_TASK:
        raise ValueError(f"{path} is not a pose prior: its model card is a {task!r} model")
    try:
        config = PosePriorConfig.from_dict(card["architecture"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: invalid pose prior config in its card: {exc}") from None
    prior = PosePrior(config)
    state = safetensors.torch.load_file(str(path), device="cpu")
    try:
        prior.load_state_dict(state, strict=True)  # copies into the float32 parameters (float16 files too)
    except RuntimeError as exc:
        raise ValueError(f"{path}: the weights do not fit the pose prior config of its card: {exc}") from None
    prior.card = card
    return prior.to(device if device is not None else "cpu").eval()


def default_pose_prior(device: torch.device | str | None = None) -> PosePrior:
    """The packaged Anny pose prior (:data:`PRIOR_WEIGHTS`, or the same file name in ``$LOWRES_HPS_WEIGHTS_DIR``).

    Raises:
        FileNotFoundError: the prior is not installed; the message says how to train it.
    """
    for folder in weights_dirs():
        if (folder / PRIOR_FILENAME).is_file():
            return load_pose_prior(folder / PRIOR_FILENAME, device)
    folders = ", ".join(str(d) for d in weights_dirs())
    raise FileNotFoundError(f"the Anny pose prior {PRIOR_FILENAME} is not installed (searched {folders}); train it "
                            f"with `python scripts/train_pose_prior.py` (SynthLR poses, a few CPU minutes)")
