"""Anatomical-consistency post-processing of 3D label volumes, arrays in (z, y, x) order."""
from .components import keep_largest_component, remove_small_components, voxel_volume_mm3
from .holes import fill_holes_2d, fill_holes_triplanar
from .laterality import brain_centre_x, keep_inside, split_left_right
from .opening import line_footprint, open_1d
from .ops import OPERATIONS, Operation, apply_ops, parse_op, parse_ops
from .tubular import (centre_line, end_landmarks, landmark_near, paint_tube, reconstruct_tube,
                      refine_by_intensity)
from .tumour import consistent_tumour_mask

__all__ = [
    "OPERATIONS", "Operation", "apply_ops", "brain_centre_x", "centre_line",
    "consistent_tumour_mask", "end_landmarks", "fill_holes_2d", "fill_holes_triplanar",
    "keep_inside", "keep_largest_component", "landmark_near", "line_footprint", "open_1d",
    "paint_tube", "parse_op", "parse_ops", "reconstruct_tube", "refine_by_intensity",
    "remove_small_components", "split_left_right", "voxel_volume_mm3",
]
