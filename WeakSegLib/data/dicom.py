"""A DICOM series folder as an input like a file (SimpleITK's GDCM series reader).

Rule: a folder holds exactly one series; several series are an error that lists them (the user
points at the one they mean, e.g. with ``--map flair=FOLDER``), and so is a series whose slices
do not share one orientation.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .errors import InputError

_DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")
_ORIENTATION_TOLERANCE = 1e-3


def _looks_like_dicom(path: Path) -> bool:
    if path.name.lower().endswith(_DICOM_SUFFIXES):
        return True
    try:
        with path.open("rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def is_dicom_folder(path: Path) -> bool:
    """Whether ``path`` is a folder whose files (a look at the first few) are DICOM."""
    path = Path(path)
    if not path.is_dir():
        return False
    files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    return bool(files) and all(_looks_like_dicom(p) for p in files[:3])


def _tag(reader: sitk.ImageFileReader, key: str) -> str:
    return reader.GetMetaData(key).strip() if reader.HasMetaDataKey(key) else ""


def _header(path: str) -> sitk.ImageFileReader:
    reader = sitk.ImageFileReader()
    reader.SetFileName(path)
    reader.LoadPrivateTagsOn()
    reader.ReadImageInformation()
    return reader


def series_description(folder: Path) -> str:
    """SeriesDescription (0008,103E) of the folder's series, or "" (used to tell modality)."""
    ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    if len(ids) != 1:
        return ""
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), ids[0])
    try:
        return _tag(_header(files[0]), "0008|103e")
    except RuntimeError:
        return ""


def read_dicom_series(folder: Path) -> sitk.Image:
    """The one series of ``folder`` as a 3D image, or an InputError naming the folder."""
    folder = Path(folder)
    ids = list(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)))
    if not ids:
        raise InputError(folder, "holds no readable DICOM series")
    if len(ids) > 1:
        described = []
        for sid in ids:
            files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), sid)
            description = _tag(_header(files[0]), "0008|103e") if files else ""
            described.append(f"{sid} ({description or 'no description'}, {len(files)} files)")
        raise InputError(folder, f"holds {len(ids)} DICOM series: {'; '.join(described)}. Put "
                         "each series in its own folder and give the FLAIR one")
    files = list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), ids[0]))
    orientations = []
    for name in files:
        text = _tag(_header(name), "0020|0037")
        if text:
            orientations.append(np.array([float(v) for v in text.split("\\")]))
    if orientations and any(not np.allclose(o, orientations[0], atol=_ORIENTATION_TOLERANCE)
                            for o in orientations):
        kinds = len({tuple(np.round(o, 3)) for o in orientations})
        raise InputError(folder, f"DICOM series mixes {kinds} slice orientations "
                         "(ImageOrientationPatient differs between files): it is not one volume")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    try:
        image = reader.Execute()
    except RuntimeError as err:
        last = str(err).strip().splitlines()[-1] if str(err).strip() else ""
        raise InputError(folder, f"cannot read the DICOM series. {last}") from None
    return image
