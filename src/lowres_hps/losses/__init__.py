"""Training losses."""
from lowres_hps.losses.bones import LIMB_BONES, bone_direction_loss, bone_indices
from lowres_hps.losses.keypoints import OFFSET_LOSS_KINDS, heatmap_ce_loss, heatmap_l2_loss, offset_loss

__all__ = ["bone_direction_loss", "bone_indices", "LIMB_BONES", "heatmap_l2_loss", "heatmap_ce_loss", "offset_loss", "OFFSET_LOSS_KINDS"]
