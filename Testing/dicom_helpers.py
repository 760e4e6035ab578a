"""Write a 3D image as a DICOM series of 2D slices (SimpleITK + GDCM), as a scanner exports it."""
from __future__ import annotations

import locale
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import SimpleITK as sitk


@contextmanager
def _locale_kept():
    """GDCM's writer leaves the process in the C locale (LC_ALL=C): Python's default text
    encoding then turns ASCII and every later test reading UTF-8 without an explicit
    encoding fails. Restore what was there."""
    saved = locale.setlocale(locale.LC_ALL)
    try:
        yield
    finally:
        locale.setlocale(locale.LC_ALL, saved)


def write_dicom_series(image: sitk.Image, folder: Path, description: str = "AX FLAIR",
                       series_uid: str | None = None, tilt_slices: tuple[int, ...] = ()
                       ) -> Path:
    """One file per k-slice with the position/orientation tags a reader needs. Values are
    stored as int16. ``tilt_slices``: slices written with another ImageOrientationPatient
    (a broken series, for the mixed-orientation test)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    image = sitk.Cast(image, sitk.sitkInt16)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    stamp = time.strftime("%H%M%S")
    uid = series_uid or f"1.2.826.0.1.3680043.2.1125.{int(time.time() * 1000) % 10 ** 12}"
    direction = image.GetDirection()
    for k in range(image.GetDepth()):
        piece = image[:, :, k]
        orientation = direction[0:7:3] + direction[1:8:3]   # row, column direction cosines
        if k in tilt_slices:
            orientation = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
        position = image.TransformIndexToPhysicalPoint((0, 0, k))
        tags = {"0008|0031": stamp, "0008|0021": time.strftime("%Y%m%d"),
                "0008|0008": "DERIVED\\SECONDARY", "0010|0010": "Test^Patient",
                "0010|0020": "TEST0001", "0020|000d": uid + ".1", "0020|000e": uid,
                "0020|0037": "\\".join(f"{v:.6f}" for v in orientation),
                "0008|103e": description, "0008|0060": "MR",
                "0020|0032": "\\".join(f"{v:.6f}" for v in position),
                "0020|0013": str(k + 1), "0018|0050": f"{image.GetSpacing()[2]:.6f}",
                "0028|0030": f"{image.GetSpacing()[1]:.6f}\\{image.GetSpacing()[0]:.6f}"}
        for key, value in tags.items():
            piece.SetMetaData(key, value)
        writer.SetFileName(str(folder / f"slice{k:04d}.dcm"))
        with _locale_kept():
            writer.Execute(piece)
    return folder


def cropped(image: sitk.Image, box: tuple[slice, slice, slice]) -> sitk.Image:
    """``image`` cut to a numpy (z, y, x) box, its physical position kept."""
    start = [box[2].start, box[1].start, box[0].start]
    size = [box[2].stop - box[2].start, box[1].stop - box[1].start, box[0].stop - box[0].start]
    return sitk.RegionOfInterest(image, size, start)


def as_float(image: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(image).astype(np.float32)
