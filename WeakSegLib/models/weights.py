"""Saving and safely loading model weights (DESIGN "Artefacts").

A file holds ``{"state_dict": ..., "metadata": {..., "format", "version", "architecture",
"arch_kwargs"}}`` and is read with ``torch.load(weights_only=True)``: nothing in it is executed,
and a corrupted, non-torch or foreign file raises ``ValueError`` naming the file and the problem.
"""
from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from .classifier import VGG16BNClassifier
from .dcgan import Discriminator, Generator
from .mixed_unet import MixedUNet
from .unet import UNet

FORMAT = "weakseg-model"
VERSION = 1

#: Architecture name → constructor; ``build_model`` rebuilds a model from saved metadata.
ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    VGG16BNClassifier.architecture: VGG16BNClassifier,
    Generator.architecture: Generator,
    Discriminator.architecture: Discriminator,
    UNet.architecture: UNet,
    MixedUNet.architecture: MixedUNet,
}

_PLAIN = (str, int, float, bool, type(None))


def _check_plain(value: Any, where: str) -> None:
    """Metadata must survive ``weights_only`` loading, so only plain containers and scalars."""
    if isinstance(value, _PLAIN):
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"metadata key {key!r} at {where} is not a string")
            _check_plain(item, f"{where}.{key}")
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
        return
    raise TypeError(f"metadata value at {where} has type {type(value).__name__}; "
                    "use str, int, float, bool, None, list, tuple or dict")


def _first_sentence(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0].split(". ")[0].rstrip(".")


def _unpickler_reason(exc: BaseException) -> str:
    """torch's weights-only message is long advice; keep just the unpickler's own reason."""
    for line in str(exc).splitlines():
        if "WeightsUnpickler error:" in line and line.split("error:", 1)[1].strip():
            return _first_sentence(RuntimeError(line.split("error:", 1)[1].strip()))
        if line.strip().startswith("Unsupported"):
            return line.strip()
    return "unsupported content"


def save_model(path: str | os.PathLike[str], model: nn.Module,
               metadata: dict[str, Any] | None = None) -> Path:
    """Write ``model``'s weights plus metadata; architecture and arch_kwargs come from the model
    (``model.architecture`` / ``model.arch_kwargs``) unless ``metadata`` supplies them."""
    path = Path(path)
    meta = dict(metadata or {})
    meta.setdefault("architecture", getattr(model, "architecture", None))
    meta.setdefault("arch_kwargs", dict(getattr(model, "arch_kwargs", {})))
    if not isinstance(meta["architecture"], str):
        raise ValueError("save_model needs an architecture name (model.architecture or metadata)")
    meta.update(format=FORMAT, version=VERSION)
    _check_plain(meta, "metadata")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"state_dict": state, "metadata": meta}, tmp)
    os.replace(tmp, path)          # never leave a half-written model.pt behind
    return path


def load_model_state(path: str | os.PathLike[str],
                     expected_architecture: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a file written by ``save_model`` and check it is ours and of the expected architecture.

    Raises ``FileNotFoundError`` if absent and ``ValueError`` (message starts with the path) for
    anything unreadable, unsafe or foreign.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")

    def fail(problem: str) -> ValueError:
        return ValueError(f"{path}: {problem}")

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise fail(f"refused by weights-only loading: it holds something other than tensors "
                   f"and plain values, or is not a torch file ({_unpickler_reason(exc)}); "
                   "nothing from it was run") from None
    except Exception as exc:  # torch raises RuntimeError, EOFError, KeyError… for damaged files
        raise fail(f"not a readable torch file, corrupted or truncated "
                   f"({type(exc).__name__}: {_first_sentence(exc)})") from None
    if not isinstance(payload, dict) or "metadata" not in payload or "state_dict" not in payload:
        raise fail("not a WeakSeg model file (no 'state_dict' + 'metadata'); "
                   "is it a checkpoint from another program?")
    meta, state = payload["metadata"], payload["state_dict"]
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise fail(f"metadata format is {meta.get('format') if isinstance(meta, dict) else meta!r},"
                   f" expected {FORMAT!r}")
    if meta.get("version") != VERSION:
        raise fail(f"model format version {meta.get('version')!r} is not supported "
                   f"(this WeakSeg reads version {VERSION})")
    if meta.get("architecture") != expected_architecture:
        raise fail(f"architecture is {meta.get('architecture')!r}, expected "
                   f"{expected_architecture!r}")
    if not isinstance(meta.get("arch_kwargs"), dict):
        raise fail("metadata has no 'arch_kwargs' dict")
    if not isinstance(state, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise fail("'state_dict' is not a mapping of names to tensors")
    return state, meta


def build_model(architecture: str, arch_kwargs: Mapping[str, Any]) -> nn.Module:
    """Construct an untrained model of a registered architecture."""
    try:
        factory = ARCHITECTURES[architecture]
    except KeyError:
        raise ValueError(f"unknown architecture {architecture!r}; known: "
                         f"{sorted(ARCHITECTURES)}") from None
    return factory(**arch_kwargs)


def load_model(path: str | os.PathLike[str], expected_architecture: str,
               device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model from its metadata and load its weights; returns (model, metadata)."""
    state, meta = load_model_state(path, expected_architecture)
    try:
        model = build_model(expected_architecture, meta["arch_kwargs"])
        model.load_state_dict(state)
    except (TypeError, RuntimeError, ValueError) as exc:
        raise ValueError(f"{path}: weights do not fit the recorded architecture: {exc}") from None
    return model.to(device), meta
