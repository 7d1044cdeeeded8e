"""Training losses."""
from lowres_hps.losses.bones import LIMB_BONES, bone_direction_loss, bone_indices
from lowres_hps.losses.keypoints import OFFSET_LOSS_KINDS, heatmap_ce_loss, heatmap_l2_loss, offset_loss
from lowres_hps.losses.silhouette import (
    binarize,
    default_steps,
    inward_distance,
    outward_distance,
    silhouette_chamfer_loss,
    silhouette_l2_loss,
    spatial_chamfer,
    topological_skeleton,
    topology_chamfer_loss,
    topology_l2_loss,
)

__all__ = ["bone_direction_loss", "bone_indices", "LIMB_BONES", "heatmap_l2_loss", "heatmap_ce_loss", "offset_loss",
           "OFFSET_LOSS_KINDS", "binarize", "inward_distance", "outward_distance", "topological_skeleton",
           "spatial_chamfer", "silhouette_chamfer_loss", "topology_chamfer_loss", "silhouette_l2_loss",
           "topology_l2_loss", "default_steps"]
