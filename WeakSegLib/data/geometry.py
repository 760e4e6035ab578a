"""The voxel grid of an image (size, spacing, origin, direction): what every output is
written back on."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

_GEOMETRY_TOLERANCE = 1e-4


@dataclass(frozen=True)
class Geometry:
    """The voxel grid of an image, enough to write a result back on exactly that grid."""

    size: tuple[int, int, int]          # SimpleITK order (x, y, z)
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]

    @classmethod
    def of(cls, image: sitk.Image) -> "Geometry":
        return cls(tuple(image.GetSize()), tuple(image.GetSpacing()), tuple(image.GetOrigin()),
                   tuple(image.GetDirection()))

    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape (z, y, x) as ``sitk.GetArrayFromImage`` returns it."""
        return tuple(reversed(self.size))

    @property
    def spacing_zyx(self) -> tuple[float, float, float]:
        return tuple(reversed(self.spacing))

    def differences(self, other: "Geometry") -> list[str]:
        out = []
        if self.size != other.size:
            out.append(f"size {self.size} vs {other.size}")
        for name in ("spacing", "origin", "direction"):
            a, b = np.asarray(getattr(self, name)), np.asarray(getattr(other, name))
            scale = max(1.0, float(np.abs(a).max(initial=0)))
            if not np.allclose(a, b, atol=_GEOMETRY_TOLERANCE * scale):
                out.append(f"{name} {tuple(float(v) for v in np.round(a, 4))} vs "
                           f"{tuple(float(v) for v in np.round(b, 4))}")
        return out

    def image_from_array(self, array: np.ndarray) -> sitk.Image:
        if tuple(array.shape) != self.shape:
            raise ValueError(f"array of shape {array.shape} does not fit the grid {self.shape}")
        image = sitk.GetImageFromArray(array)
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction)
        return image
