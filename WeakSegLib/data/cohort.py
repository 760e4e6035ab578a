"""Find cases on disk: a folder of case folders, a single case folder, or explicit files.
A DICOM series folder counts as a file (its modality from its name, else its SeriesDescription).

Discovery only looks at names; reading and the geometry checks live in ``reader``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from ..config import MASK_KEY, MODALITIES, REQUIRED_MODALITY
from .dicom import is_dicom_folder, series_description
from .errors import InputError
from .modalities import is_image_file, recognise_modality, validate_aliases


@dataclass(frozen=True)
class CaseFiles:
    """The files of one case: modality key → path, plus the optional mask."""

    name: str
    images: dict[str, Path]
    mask: Path | None = None
    folder: Path | None = None

    @property
    def modalities(self) -> list[str]:
        return [m for m in MODALITIES if m in self.images]


@dataclass
class Cohort:
    cases: list[CaseFiles] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.cases)

    def __iter__(self):
        return iter(self.cases)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.cases]

    def common_modalities(self) -> list[str]:
        """Channels a model trained on this cohort uses: those every case has, in canonical order."""
        return [m for m in MODALITIES if all(m in c.images for c in self.cases)]

    def with_masks(self) -> "Cohort":
        return Cohort([c for c in self.cases if c.mask is not None])

    def select(self, names: Iterable[str]) -> "Cohort":
        wanted = list(names)
        by_name = {c.name: c for c in self.cases}
        missing = [n for n in wanted if n not in by_name]
        if missing:
            raise InputError(None, f"cases not in the cohort: {', '.join(missing)}")
        return Cohort([by_name[n] for n in wanted])


def case_from_files(files: Sequence[Path], name: str | None = None,
                    aliases: Mapping[str, str] | None = None,
                    mapping: Mapping[str, str | Path] | None = None) -> CaseFiles:
    """Build a case from explicit files. ``mapping`` (modality → path) wins over file names."""
    images: dict[str, Path] = {}
    mask: Path | None = None
    assigned: dict[str, Path] = {}
    if mapping:
        for key, path in mapping.items():
            key = validate_aliases({key: key})[key.lower()]
            assigned[key] = Path(path)
    mapped_paths = {p.resolve() for p in assigned.values()}
    for path in map(Path, files):
        if path.resolve() in mapped_paths:
            continue
        key = recognise_modality(path, aliases)
        if key is None and is_dicom_folder(path):
            key = recognise_modality(Path(series_description(path) or "none"), aliases)
        if key is None:
            raise InputError(path, "cannot tell which modality this file holds from its name; "
                             "rename it (e.g. *_flair.nii.gz, *-t2f.nii.gz, flair.nii.gz) or give "
                             "an explicit mapping (--map flair=FILE or --alias NAME=flair)")
        if key in assigned:
            raise InputError(path, f"two files claim modality '{key}': {assigned[key].name} and "
                             f"{path.name}; remove one or give an explicit mapping")
        assigned[key] = path
    for key, path in assigned.items():
        if not path.is_file() and not is_dicom_folder(path):
            raise InputError(path, f"file for modality '{key}' does not exist")
        if key == MASK_KEY:
            mask = path
        else:
            images[key] = path
    if REQUIRED_MODALITY not in images:
        where = sorted(p.name for p in assigned.values()) or ["no image files"]
        raise InputError(_common_parent(list(assigned.values())) if assigned else None,
                         f"no FLAIR image found (have: {', '.join(where)}); WeakSeg needs FLAIR "
                         "(*_flair, *-t2f or flair.*), or map one with --map flair=FILE")
    folder = _common_parent(list(assigned.values()))
    return CaseFiles(name=name or (folder.name if folder else "case"), images=images, mask=mask,
                     folder=folder)


def _common_parent(paths: list[Path]) -> Path | None:
    parents = {p.resolve().parent for p in paths}
    return parents.pop() if len(parents) == 1 else None


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if (p.is_file() and is_image_file(p)) or is_dicom_folder(p))


def discover_cohort(source: str | Path | Sequence[str | Path],
                    aliases: Mapping[str, str] | None = None,
                    mapping: Mapping[str, str | Path] | None = None,
                    name: str | None = None) -> Cohort:
    """Turn a path (or a list of files) into a cohort, failing early with a message naming the path."""
    if not isinstance(source, (str, Path)):
        return Cohort([case_from_files([Path(s) for s in source], name, aliases, mapping)])
    root = Path(source)
    if not root.exists():
        raise InputError(root, "does not exist")
    if root.is_file() or is_dicom_folder(root):
        return Cohort([case_from_files([root], name, aliases, mapping)])
    own_images = _image_files(root)
    if own_images or mapping:
        return Cohort([case_from_files(own_images, name or root.name, aliases, mapping)])
    sub_folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    cases = [case_from_files(files, folder.name, aliases)
             for folder in sub_folders if (files := _image_files(folder))]
    if not cases:
        raise InputError(root, "no cases found: the folder holds no image files "
                         "(.nii.gz, .nii, .nrrd, .mha) and no case folders containing them")
    return Cohort(cases)
