"""Heads: features -> per-keypoint heatmaps and offset fields."""
from lowres_hps.models.heads.heatmap_offset import HeatmapOffsetHead
from lowres_hps.models.heads.movenet_head import MoveNetKeypointHead

__all__ = ["HeatmapOffsetHead", "MoveNetKeypointHead"]
