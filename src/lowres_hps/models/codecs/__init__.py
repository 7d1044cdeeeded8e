"""Keypoint codecs: keypoints (input pixels) <-> heatmap / offset targets, one contract for all.

``codec.encode(keypoints (B, K, 2), visible (B, K)) -> KeypointTargets`` and
``codec.decode(heatmaps (B, K, h, w), offsets (B, K, 2, h, w) | None) -> (keypoints (B, K, 2), scores (B, K))``.
Names for configs: ``"msra"``, ``"msra_dark"``, ``"udp"``, ``"cal"`` (see :func:`codec_from_config`).
"""
from __future__ import annotations

from lowres_hps.models.codecs.base import KeypointCodec, KeypointTargets, OffsetCodec, udp_radius
from lowres_hps.models.codecs.cal import CALCodec
from lowres_hps.models.codecs.flip import flip_back_heatmaps, flip_back_offsets, flip_keypoints, merge_flip
from lowres_hps.models.codecs.gmm import GaussianMixture, fit_gmm, gmm_log_density, mixed_gaussian_masks
from lowres_hps.models.codecs.msra import MSRAHeatmap, dark_refine, quarter_offset_refine
from lowres_hps.models.codecs.udp import UDPBinary

__all__ = [
    "KeypointCodec",
    "KeypointTargets",
    "OffsetCodec",
    "MSRAHeatmap",
    "UDPBinary",
    "CALCodec",
    "codec_from_config",
    "CODEC_NAMES",
    "udp_radius",
    "dark_refine",
    "quarter_offset_refine",
    "GaussianMixture",
    "fit_gmm",
    "gmm_log_density",
    "mixed_gaussian_masks",
    "flip_keypoints",
    "flip_back_heatmaps",
    "flip_back_offsets",
    "merge_flip",
]

_CODECS = {
    "msra": (MSRAHeatmap, {}),
    "msra_dark": (MSRAHeatmap, {"decode_dark": True}),
    "udp": (UDPBinary, {}),
    "cal": (CALCodec, {}),
}
CODEC_NAMES = tuple(_CODECS)


def codec_from_config(name: str, **params) -> KeypointCodec:
    """Codec by config name, e.g. ``codec_from_config("cal", input_size=(128, 96), stride=4, sigma=2.0)``."""
    if name not in _CODECS:
        raise ValueError(f"unknown codec {name!r}; choose one of {', '.join(CODEC_NAMES)}")
    cls, fixed = _CODECS[name]
    clash = set(fixed) & set(params)
    if clash:
        raise ValueError(f"codec {name!r} fixes {', '.join(sorted(clash))}; use another name to change it")
    return cls(**fixed, **params)
