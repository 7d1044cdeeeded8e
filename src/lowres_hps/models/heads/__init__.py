"""Heads: features -> per-keypoint heatmaps and offset fields."""
from lowres_hps.models.heads.heatmap_offset import HeatmapOffsetHead

__all__ = ["HeatmapOffsetHead"]
