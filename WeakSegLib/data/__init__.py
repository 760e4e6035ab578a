"""Cohort discovery, reading and checks, preprocessing, slice labels and the phantom cohort."""
from .cohort import CaseFiles, Cohort, discover_cohort
from .errors import InputError
from .reader import CaseVolumes, Geometry, read_case, read_image, write_label_map

__all__ = ["CaseFiles", "Cohort", "discover_cohort", "InputError", "CaseVolumes", "Geometry",
           "read_case", "read_image", "write_label_map"]
