"""First-run setup inside Slicer: PyTorch through the PyTorch extension, the rest with pip.

PyTorch must match the machine's CUDA driver, which the PyTorch extension's ``PyTorchUtils``
works out; installing it is a multi-GB download, so it happens only after the user says yes.
Slicer and that extension own torch, numpy, SimpleITK and VTK: nothing here may replace them.
So torch's version is checked first (from its metadata, without importing it), monai is
installed with ``--no-deps`` in a version that fits that torch (monai >= 1.5 needs torch >=
2.4.1 and would otherwise pull a multi-GB PyPI torch), and the other packages are installed
under a constraints file pinning whatever of the protected packages is installed.

The environment line (torch, CUDA, GPU) is found by a subprocess (:class:`EnvironmentProbe`):
importing torch in Slicer's GUI process freezes it for seconds and holds a CUDA context for the
whole session. Everything is guarded so that this module imports without Slicer.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import json
import re
import subprocess
import sys
import tempfile
from typing import Any, Callable, Sequence

#: pip requirement → the module it provides (pyproject.toml's dependencies, torch and the
#: packages Slicer provides apart; monai is handled by :func:`monai_requirement`).
REQUIREMENTS: dict[str, str] = {
    "scipy>=1.10": "scipy",
    "nibabel>=5": "nibabel",
    "scikit-image>=0.21": "skimage",
    "scikit-learn>=1.3": "sklearn",
    "nilearn>=0.10": "nilearn",
    "tqdm>=4.60": "tqdm",
    "matplotlib>=3.7": "matplotlib",
}
#: Distribution → module of what Slicer and its PyTorch extension provide: never installed,
#: upgraded or downgraded by WeakSeg (a missing one is reported, not installed).
PROVIDED: dict[str, str] = {"numpy": "numpy", "SimpleITK": "SimpleITK", "vtk": "vtk"}
TORCH_MINIMUM: tuple[int, ...] = (2, 1)
TORCH_REQUIREMENT = ">=2.1"
#: monai 1.5 and later require torch >= 2.4.1; older torch gets monai 1.3/1.4.
MONAI_NEEDS_NEW_TORCH: tuple[int, ...] = (2, 4, 1)


def module_available(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def parse_version(text: str) -> tuple[int, ...]:
    """``"2.4.1+cu121"`` → ``(2, 4, 1)``: the leading numeric release, enough to compare."""
    numbers = []
    for part in text.split("+")[0].split("."):
        match = re.match(r"\d+", part)
        if not match:
            break
        numbers.append(int(match.group()))
        if match.group() != part:
            break
    return tuple(numbers)


def installed_version(distribution: str) -> str | None:
    """Installed version of a distribution from its metadata (nothing is imported), or None."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def torch_version() -> str | None:
    return installed_version("torch")


def monai_requirement(torch: str | None) -> str:
    """The monai that fits the installed torch, so that pip never needs another torch."""
    if torch is not None and parse_version(torch) >= MONAI_NEEDS_NEW_TORCH:
        return "monai>=1.3"
    return "monai>=1.3,<1.5"


def missing_requirements(requirements: dict[str, str] | None = None,
                         available: Callable[[str], bool] = module_available) -> list[str]:
    """Requirements whose module cannot be found (torch is handled by :func:`ensure_torch`)."""
    requirements = REQUIREMENTS if requirements is None else requirements
    return [req for req, module in requirements.items() if not available(module)]


def missing_provided(available: Callable[[str], bool] = module_available) -> list[str]:
    """Packages Slicer should provide but that are missing (reported, never installed)."""
    return [dist for dist, module in PROVIDED.items() if not available(module)]


def protected_constraints(version: Callable[[str], str | None] = installed_version) -> list[str]:
    """``name==version`` for each installed package pip must leave alone (torch included)."""
    pins = []
    for distribution in ("torch", *PROVIDED):
        found = version(distribution)
        if found:
            pins.append(f"{distribution}=={found}")
    return pins


def install_requirements(requirements: Sequence[str],
                         pip_install: Callable[[Any], Any] | None = None,
                         constraints: Sequence[str] | None = None,
                         no_deps: bool = False) -> None:
    """Install with ``slicer.util.pip_install`` in one call (so pip resolves them together),
    under a constraints file that pins torch, numpy, SimpleITK and VTK where installed.

    The arguments go as a list (``pip_install`` accepts one), so Windows paths keep their
    backslashes.
    """
    if not requirements:
        return
    if pip_install is None:
        import slicer.util

        pip_install = slicer.util.pip_install
    constraints = protected_constraints() if constraints is None else list(constraints)
    arguments: list[str] = []
    if constraints:
        handle = tempfile.NamedTemporaryFile("w", suffix="-weakseg-constraints.txt",
                                             delete=False, encoding="utf-8")
        with handle:
            handle.write("\n".join(constraints) + "\n")
        arguments += ["-c", handle.name]
    if no_deps:
        arguments.append("--no-deps")
    pip_install(arguments + list(requirements))


def torch_installed() -> bool:
    return module_available("torch")


def torch_problem(version: str | None = None) -> str | None:
    """Why the installed torch cannot serve WeakSeg (too old), or None."""
    version = torch_version() if version is None else version
    if version and parse_version(version) < TORCH_MINIMUM:
        return (f"WeakSeg needs PyTorch {TORCH_REQUIREMENT}, this Slicer has {version}: update "
                "it in Modules → Utilities → PyTorch Utils")
    return None


def ensure_torch(confirm: Callable[[str], bool], torch_utils: Any | None = None,
                 requirement: str = TORCH_REQUIREMENT) -> bool:
    """Make torch importable: True when it is (already, or after an install the user allowed).

    ``confirm`` asks the user (a yes/no dialog in Slicer). ``torch_utils`` is the PyTorch
    extension's ``PyTorchUtils`` module (imported here when not given); without that extension
    the user is told to install it, since pip alone cannot pick the right CUDA build. An
    installed torch that is too old is an error (replacing it is the extension's job).
    """
    if torch_installed():
        problem = torch_problem()
        if problem:
            raise RuntimeError(problem)
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
                        pip_install: Callable[[Any], Any] | None = None,
                        torch_utils: Any | None = None,
                        requirements: dict[str, str] | None = None,
                        available: Callable[[str], bool] = module_available,
                        version: Callable[[str], str | None] = installed_version) -> list[str]:
    """torch first (version checked, install asked), then the missing pip packages (asking
    once), never touching torch, numpy, SimpleITK or VTK. Returns what is still missing; an
    empty list means WeakSeg can run."""
    missing: list[str] = list(missing_provided(available))
    has_torch = ensure_torch(confirm, torch_utils)
    if not has_torch:
        missing.append("torch")
    needed = missing_requirements(requirements, available)
    monai = None
    if has_torch and not available("monai"):
        monai = monai_requirement(version("torch"))   # no torch, no monai: it would pull one in
    elif not has_torch and not available("monai"):
        missing.append("monai")
    asked = needed + ([monai] if monai else [])
    if asked and confirm("WeakSeg needs these Python packages: " + ", ".join(asked)
                         + ". Install them now? (torch, numpy, SimpleITK and VTK stay as they "
                         "are.)"):
        constraints = protected_constraints(version)
        install_requirements(needed, pip_install, constraints)
        if monai:                      # its only dependencies are torch and numpy: keep them
            install_requirements([monai], pip_install, constraints, no_deps=True)
        importlib.invalidate_caches()          # let find_spec see what pip just put there
        needed = missing_requirements(requirements, available)
        monai = monai if monai and not available("monai") else None
    return missing + list(needed) + ([monai] if monai else [])


# ------------------------------------------------------------------ environment, in a subprocess

def environment_command(python: str | None = None) -> list[str]:
    """The command that prints :func:`environment_info` as one JSON line."""
    from .jobs import python_executable

    return [python or python_executable(), "-m", "WeakSegLib.slicer.install", "--environment"]


class EnvironmentProbe:
    """Finds torch, CUDA and the GPU in a subprocess, so that Slicer's GUI never imports torch.

    :meth:`start` returns at once; :meth:`poll` (from the panel's timer) gives the environment
    line once the subprocess has answered, None before.
    """

    def __init__(self, python: str | None = None, timeout: float = 120.0):
        self.command = environment_command(python)
        self.timeout = timeout
        self.line: str | None = None
        self._process: subprocess.Popen | None = None
        self._started = 0.0

    @property
    def running(self) -> bool:
        return self._process is not None and self.line is None

    def start(self) -> "EnvironmentProbe":
        import time

        from .jobs import child_environment, popen_options

        self.line = None
        self._started = time.monotonic()
        try:
            self._process = subprocess.Popen(
                self.command, env=child_environment(), stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8",
                errors="replace", **popen_options())
        except OSError as error:
            self.line = f"environment check could not start ({error})"
        return self

    def poll(self) -> str | None:
        """The environment line once known, else None. Never blocks."""
        import time

        if self.line is not None or self._process is None:
            return self.line
        if self._process.poll() is None:
            if time.monotonic() - self._started > self.timeout:
                self._process.kill()
                self._process.communicate()
                self.line = f"environment check gave no answer in {self.timeout:.0f} s"
            return self.line
        out, err = self._process.communicate()
        self.line = parse_environment_output(out, err)
        return self.line


def parse_environment_output(out: str, err: str = "") -> str:
    """The environment line from the probe's output (its last JSON line), or why not."""
    for line in reversed((out or "").splitlines()):
        try:
            return environment_line(json.loads(line))
        except (ValueError, TypeError, AttributeError):
            continue
    last = (err or "").strip().splitlines()[-1:] or ["no output"]
    return f"environment check failed: {last[0]}"


if __name__ == "__main__":
    if sys.argv[1:] == ["--environment"]:
        print(json.dumps(environment_info()), flush=True)
    else:
        sys.exit("usage: python -m WeakSegLib.slicer.install --environment")
