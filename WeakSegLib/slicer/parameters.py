"""The module's parameter node: panel settings saved with the scene, in parameterNodeWrapper's format.

Slicer's ``parameterNodeWrapper`` needs Qt, so it cannot run headless; this is a small explicit
mapping from a dataclass to a ``vtkMRMLScriptedModuleNode`` that writes exactly what the
wrapper's serializers write (Base/Python/slicer/parameterNodeWrapper/serializers.py), so a scene
saved by either reads back in both:

=====================  ==========================================================================
type                   stored as
=====================  ==========================================================================
``str``                the string
``int`` / ``float``    ``str(value)``
``bool``               ``"True"`` / ``"False"``
MRML node              parameter ``""`` plus a node reference with the same name (ID or none)
``Path | None``        Union: ``name.0`` = the path, or ``name.1`` = ``"True"`` for None
``dict[str, (i, j)]``  list of (key, (i, j)) tuples: ``name.len``, ``name.K.0`` = key,
                       ``name.K.1.0`` = i, ``name.K.1.1`` = j
=====================  ==========================================================================

The singleton tag and ``ModuleName`` attribute follow ``ScriptedLoadableModuleLogic``.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from . import defaults
from .commands import DEVICES

MODULE_NAME = "WeakSeg"
NODE_CLASS = "vtkMRMLScriptedModuleNode"


@dataclass
class WeakSegParameters:
    """Everything on the panel worth keeping with the scene. ``meta["param"]`` is the stored name."""

    flair: Any = field(default=None, metadata={"param": "flairVolume", "kind": "node"})
    t1: Any = field(default=None, metadata={"param": "t1Volume", "kind": "node"})
    t1ce: Any = field(default=None, metadata={"param": "t1ceVolume", "kind": "node"})
    t2: Any = field(default=None, metadata={"param": "t2Volume", "kind": "node"})
    reference: Any = field(default=None, metadata={"param": "referenceVolume", "kind": "node"})
    # a fresh node starts with the bundle shipped with the extension, when there is one
    model_dir: Path | None = field(default_factory=defaults.default_model,
                                   metadata={"param": "modelPath", "kind": "path"})
    device: str = field(default="auto", metadata={"param": "device", "kind": "str"})
    # defaults from config.py's inference section (see .defaults), never repeated here
    method: str = field(default=defaults.METHOD, metadata={"param": "method", "kind": "str"})
    # on by default with the CLI's default operations (issue 6: raised Dice on real data)
    postprocess: bool = field(default=True, metadata={"param": "postprocess", "kind": "bool"})
    postprocess_ops: str = field(default=defaults.POSTPROCESS_OPS,
                                 metadata={"param": "postprocessOps", "kind": "str"})
    # review priority at or above this flags a slice (the slider)
    threshold: float = field(default=defaults.REVIEW_THRESHOLD,
                             metadata={"param": "threshold", "kind": "float"})
    # a result without review priority (written before it existed): D below this flags a slice
    difference_threshold: float = field(default=defaults.DIFFERENCE_THRESHOLD,
                                        metadata={"param": "differenceThreshold",
                                                  "kind": "float"})
    segmentation: Any = field(default=None,
                              metadata={"param": "outputSegmentation", "kind": "node"})
    review_table: Any = field(default=None, metadata={"param": "reviewTable", "kind": "node"})
    result_dir: Path | None = field(default=None, metadata={"param": "resultPath", "kind": "path"})
    train_source: str = field(default="cohort", metadata={"param": "trainSource", "kind": "str"})
    cohort_dir: Path | None = field(default=None, metadata={"param": "cohortPath", "kind": "path"})
    run_dir: Path | None = field(default=None, metadata={"param": "trainRunPath", "kind": "path"})
    ranges: dict[str, tuple[int, int]] = field(
        default_factory=dict, metadata={"param": "tumourRanges", "kind": "ranges"})
    export_dir: Path | None = field(default=None, metadata={"param": "exportPath", "kind": "path"})
    reviewer: str = field(default="", metadata={"param": "reviewer", "kind": "str"})

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {self.device!r}")
        if self.train_source not in ("cohort", "volumes"):
            raise ValueError(f"train_source must be 'cohort' or 'volumes', got "
                             f"{self.train_source!r}")

    @property
    def inputs(self) -> dict[str, Any]:
        """Selected modality nodes, canonical order, unselected ones left out."""
        return {key: getattr(self, key) for key in ("flair", "t1", "t1ce", "t2")
                if getattr(self, key) is not None}


# ------------------------------------------------------------------ the node

def get_parameter_node(scene: Any, module_name: str = MODULE_NAME) -> Any:
    """The module's singleton parameter node in ``scene``, made on first use."""
    import slicer

    node = scene.GetSingletonNode(module_name, NODE_CLASS)
    if node is None:
        node = slicer.vtkMRMLScriptedModuleNode()
        node.SetSingletonTag(module_name)
        node.SetName(scene.GenerateUniqueName(module_name))
        node.SetAttribute("ModuleName", module_name)
        node = scene.AddNode(node)
    elif node.GetAttribute("ModuleName") != module_name:
        node.SetAttribute("ModuleName", module_name)   # what a scene close may drop
    return node


# ------------------------------------------------------------------ per kind

def _write_node(node: Any, name: str, value: Any) -> None:
    node.SetParameter(name, "")
    node.SetNodeReferenceID(name, value.GetID() if value is not None else None)


def _read_node(node: Any, name: str) -> Any:
    return node.GetNodeReference(name)


def _write_path(node: Any, name: str, value: Path | None) -> None:
    node.UnsetParameter(f"{name}.0")
    node.UnsetParameter(f"{name}.1")
    if value is None:
        node.SetParameter(f"{name}.1", "True")
    else:
        node.SetParameter(f"{name}.0", str(value))


def _read_path(node: Any, name: str, default: Path | None) -> Path | None:
    if node.HasParameter(f"{name}.0"):
        return Path(node.GetParameter(f"{name}.0"))
    if node.HasParameter(f"{name}.1"):
        return None
    return default


def _write_ranges(node: Any, name: str, value: dict[str, tuple[int, int]]) -> None:
    old = int(node.GetParameter(f"{name}.len")) if node.HasParameter(f"{name}.len") else 0
    for index, (key, (first, last)) in enumerate(value.items()):
        node.SetParameter(f"{name}.{index}.0", str(key))
        node.SetParameter(f"{name}.{index}.1.0", str(int(first)))
        node.SetParameter(f"{name}.{index}.1.1", str(int(last)))
    node.SetParameter(f"{name}.len", str(len(value)))
    for index in range(len(value), old):
        for suffix in (".0", ".1.0", ".1.1"):
            node.UnsetParameter(f"{name}.{index}{suffix}")


def _read_ranges(node: Any, name: str) -> dict[str, tuple[int, int]]:
    if not node.HasParameter(f"{name}.len"):
        return {}
    out = {}
    for index in range(int(node.GetParameter(f"{name}.len"))):
        key = node.GetParameter(f"{name}.{index}.0")
        out[key] = (int(node.GetParameter(f"{name}.{index}.1.0")),
                    int(node.GetParameter(f"{name}.{index}.1.1")))
    return out


# ------------------------------------------------------------------ whole dataclass

def write_parameters(node: Any, parameters: WeakSegParameters) -> None:
    """Store every field (one Modified event for all, as the wrapper's NodeModify does)."""
    was_modifying = node.StartModify()
    try:
        for f in fields(WeakSegParameters):
            name, kind, value = f.metadata["param"], f.metadata["kind"], getattr(parameters, f.name)
            if kind == "node":
                _write_node(node, name, value)
            elif kind == "path":
                _write_path(node, name, None if value in (None, "") else Path(value))
            elif kind == "ranges":
                _write_ranges(node, name, dict(value))
            elif kind == "bool":
                node.SetParameter(name, "True" if value else "False")
            else:                                    # str, int, float
                node.SetParameter(name, str(value))
    finally:
        node.EndModify(was_modifying)


def read_parameters(node: Any) -> WeakSegParameters:
    """The dataclass back; a parameter missing from the node keeps its default."""
    defaults = WeakSegParameters()
    values: dict[str, Any] = {}
    for f in fields(WeakSegParameters):
        name, kind, default = f.metadata["param"], f.metadata["kind"], getattr(defaults, f.name)
        if kind == "node":
            values[f.name] = _read_node(node, name)
        elif kind == "path":
            values[f.name] = _read_path(node, name, default)
        elif kind == "ranges":
            values[f.name] = _read_ranges(node, name)
        elif not node.HasParameter(name):
            values[f.name] = default
        elif kind == "bool":
            values[f.name] = node.GetParameter(name) == "True"
        elif kind == "float":
            values[f.name] = float(node.GetParameter(name))
        elif kind == "int":
            values[f.name] = int(node.GetParameter(name))
        else:
            values[f.name] = node.GetParameter(name)
    return WeakSegParameters(**values)


def update_parameters(node: Any, **changes: Any) -> WeakSegParameters:
    """Read, change some fields, write back: what a widget's change handler does."""
    parameters = read_parameters(node)
    for key, value in changes.items():
        if not hasattr(parameters, key):
            raise AttributeError(f"WeakSegParameters has no field {key!r}")
        setattr(parameters, key, value)
    parameters.__post_init__()
    write_parameters(node, parameters)
    return parameters
