"""First-run setup inside Slicer: PyTorch through the PyTorch extension, the rest with pip.

PyTorch must match the machine's CUDA driver, which the PyTorch extension's ``PyTorchUtils``
works out; installing it is a multi-GB download, so it happens only after the user says yes.
The other packages come with ``slicer.util.pip_install``. Everything is guarded so that this
module imports (and its checks run) without Slicer.
"""
from __future__ import annotations

import importlib
import importlib.util
from typing import Any, Callable, Sequence

#: pip requirement → the module it provides (pyproject.toml's dependencies, torch apart).
REQUIREMENTS: dict[str, str] = {
    "numpy>=1.24": "numpy",
    "scipy>=1.10": "scipy",
    "SimpleITK>=2.3": "SimpleITK",
    "nibabel>=5": "nibabel",
    "scikit-image>=0.21": "skimage",
    "scikit-learn>=1.3": "sklearn",
    "nilearn>=0.10": "nilearn",
    "tqdm>=4.60": "tqdm",
    "matplotlib>=3.7": "matplotlib",
    "monai>=1.3": "monai",
}
TORCH_REQUIREMENT = ">=2.1"


def module_available(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def missing_requirements(requirements: dict[str, str] | None = None,
                         available: Callable[[str], bool] = module_available) -> list[str]:
    """Requirements whose module cannot be found (torch is handled by :func:`ensure_torch`)."""
    requirements = REQUIREMENTS if requirements is None else requirements
    return [req for req, module in requirements.items() if not available(module)]


def install_requirements(requirements: Sequence[str],
                         pip_install: Callable[[str], Any] | None = None) -> None:
    """Install with ``slicer.util.pip_install`` (one call, so pip resolves them together)."""
    if not requirements:
        return
    if pip_install is None:
        import slicer.util

        pip_install = slicer.util.pip_install
    pip_install(" ".join(f'"{r}"' if any(c in r for c in "<>=") else r for r in requirements))


def torch_installed() -> bool:
    return module_available("torch")


def ensure_torch(confirm: Callable[[str], bool], torch_utils: Any | None = None,
                 requirement: str = TORCH_REQUIREMENT) -> bool:
    """Make torch importable: True when it is (already, or after an install the user allowed).

    ``confirm`` asks the user (a yes/no dialog in Slicer). ``torch_utils`` is the PyTorch
    extension's ``PyTorchUtils`` module (imported here when not given); without that extension
    the user is told to install it, since pip alone cannot pick the right CUDA build.
    """
    if torch_installed():
        return True
    if torch_utils is None:
        try:
            import PyTorchUtils as torch_utils  # type: ignore[no-redef]
        except ImportError:
            raise RuntimeError("WeakSeg needs PyTorch: install the 'PyTorch' extension from the "
                               "Extensions Manager, restart Slicer and try again") from None
    logic = torch_utils.PyTorchUtilsLogic()
    if logic.torchInstalled():
        return True
    if not confirm("WeakSeg needs PyTorch, which is not installed yet. Install it now? "
                   "It is a large download (up to a few GB) and takes several minutes."):
        return False
    torch = logic.installTorch(askConfirmation=False, torchVersionRequirement=requirement)
    return torch is not None


def environment_info() -> dict[str, Any]:
    """torch version, whether CUDA works, and the device a run would use — or why not."""
    info: dict[str, Any] = {"torch": None, "cuda": False, "device": "cpu", "gpu": None,
                            "problem": None}
    try:
        import torch
    except Exception as error:          # missing, or a broken install (DLL load failed, ...)
        info["problem"] = f"PyTorch not available ({error.__class__.__name__}: {error})"
        return info
    info["torch"] = torch.__version__
    try:
        info["cuda"] = bool(torch.cuda.is_available())
        if info["cuda"]:
            info["device"] = "cuda"
            info["gpu"] = torch.cuda.get_device_name(0)
    except Exception as error:
        info["problem"] = f"CUDA check failed: {error}"
    return info


def environment_line(info: dict[str, Any] | None = None) -> str:
    """One line for the Model section, e.g. ``torch 2.3.1 · CUDA: yes · NVIDIA A100``."""
    info = environment_info() if info is None else info
    if info.get("torch") is None:
        return info.get("problem") or "PyTorch not installed"
    parts = [f"torch {info['torch']}", f"CUDA: {'yes' if info.get('cuda') else 'no'}",
             info.get("gpu") or "CPU only"]
    if info.get("problem"):
        parts.append(info["problem"])
    return " · ".join(parts)


def ensure_dependencies(confirm: Callable[[str], bool],
                        pip_install: Callable[[str], Any] | None = None,
                        torch_utils: Any | None = None,
                        requirements: dict[str, str] | None = None) -> list[str]:
    """torch (asking first), then the missing pip packages (asking first). Returns what is
    still missing; an empty list means WeakSeg can run."""
    missing: list[str] = []
    if not ensure_torch(confirm, torch_utils):
        missing.append("torch")
    needed = missing_requirements(requirements)
    if needed and confirm("WeakSeg needs these Python packages: " + ", ".join(needed)
                          + ". Install them now?"):
        install_requirements(needed, pip_install)
        importlib.invalidate_caches()          # let find_spec see what pip just put there
        needed = missing_requirements(requirements)
    return missing + list(needed)
