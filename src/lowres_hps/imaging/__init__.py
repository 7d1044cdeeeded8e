"""Image I/O, person crops, the low-resolution protocol (see :mod:`lowres_hps.imaging.protocol`), foreground
silhouettes of a static camera and image-domain shifts."""
from lowres_hps.imaging.crop import crop_box, crop_person, enlarge_box, fix_aspect_ratio, warp_box
from lowres_hps.imaging.domain_shift import DOMAIN_SHIFTS, apply_domain_shift
from lowres_hps.imaging.foreground import (
    CameraMotionError,
    ForegroundConfig,
    ForegroundExtractor,
    foreground_masks,
    person_silhouettes,
    warp_mask,
)
from lowres_hps.imaging.io import read_image_rgb, write_image_rgb
from lowres_hps.imaging.protocol import (
    EVAL_MIDPOINTS,
    HIGH_RESOLUTION,
    RESOLUTION_RANGES,
    LowResCrop,
    LowResProtocol,
    degrade,
    degrade_image,
    resize_images,
    resize_to_person_height,
    resolution_to_range_index,
    sample_resolution,
    sample_resolutions_per_range,
)

__all__ = [
    "read_image_rgb",
    "write_image_rgb",
    "fix_aspect_ratio",
    "enlarge_box",
    "crop_box",
    "warp_box",
    "crop_person",
    "HIGH_RESOLUTION",
    "RESOLUTION_RANGES",
    "EVAL_MIDPOINTS",
    "resolution_to_range_index",
    "sample_resolution",
    "sample_resolutions_per_range",
    "resize_images",
    "resize_to_person_height",
    "degrade",
    "degrade_image",
    "LowResCrop",
    "LowResProtocol",
    "ForegroundConfig",
    "ForegroundExtractor",
    "CameraMotionError",
    "foreground_masks",
    "person_silhouettes",
    "warp_mask",
    "DOMAIN_SHIFTS",
    "apply_domain_shift",
]
