"""Evaluation metrics: 2D keypoints (COCO OKS AP, PCK), 3D keypoints and meshes and 3D body networks (MPJPE, PA-MPJPE, PVE, 3DPCK, AUC), masks."""
from lowres_hps.evaluation.keypoints2d import (
    COCO17_SIGMAS,
    COCO_KEYPOINT_STATS,
    bbox_size,
    coco_keypoint_ap,
    head_size,
    head_size_from_box,
    oks,
    oks_keypoint_scale,
    pck,
    pckh,
    torso_size,
)
from lowres_hps.evaluation.body3d import evaluate_body3d
from lowres_hps.evaluation.keypoints3d import align_root, auc3d, joint_errors, mpjpe, pa_mpjpe, pck3d, pve
from lowres_hps.evaluation.masks import (
    BinaryMaskMetrics,
    SegmentationMetrics,
    binary_mask_metrics,
    confusion_matrix,
    metrics_from_confusion,
    segmentation_metrics,
)

__all__ = [
    "COCO17_SIGMAS", "COCO_KEYPOINT_STATS", "coco_keypoint_ap", "oks", "oks_keypoint_scale", "pck", "pckh",
    "torso_size", "head_size", "head_size_from_box", "bbox_size",
    "evaluate_body3d", "align_root", "joint_errors", "mpjpe", "pa_mpjpe", "pve", "pck3d", "auc3d",
    "BinaryMaskMetrics", "SegmentationMetrics", "binary_mask_metrics", "confusion_matrix",
    "metrics_from_confusion", "segmentation_metrics",
]
