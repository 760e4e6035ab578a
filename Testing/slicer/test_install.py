"""First-run setup logic without Slicer: environment line, torch via PyTorchUtils, pip packages."""
from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

from WeakSegLib.slicer import install, jobs


class FakeTorchLogic:
    installed = False
    calls: list = []

    def torchInstalled(self):
        return self.installed

    def installTorch(self, askConfirmation=False, torchVersionRequirement=None, **kwargs):
        FakeTorchLogic.calls.append((askConfirmation, torchVersionRequirement))
        return object()


@pytest.fixture()
def torch_utils(monkeypatch):
    FakeTorchLogic.calls = []
    monkeypatch.setattr(install, "torch_installed", lambda: False)
    return types.SimpleNamespace(PyTorchUtilsLogic=FakeTorchLogic)


def test_environment_info_and_line() -> None:
    pytest.importorskip("torch")
    info = install.environment_info()
    import torch

    assert info["torch"] == torch.__version__ and info["cuda"] == torch.cuda.is_available()
    line = install.environment_line(info)
    assert line.startswith(f"torch {torch.__version__} · CUDA: ")
    assert install.environment_line({"torch": "2.3.1", "cuda": True, "gpu": "NVIDIA A100"}) == \
        "torch 2.3.1 · CUDA: yes · NVIDIA A100"
    assert "not available" in install.environment_line(
        {"torch": None, "problem": "PyTorch not available (ImportError: x)"})


def test_torch_is_installed_only_after_the_user_agrees(torch_utils) -> None:
    questions = []
    assert not install.ensure_torch(lambda q: questions.append(q) or False, torch_utils)
    assert FakeTorchLogic.calls == [] and "PyTorch" in questions[0]
    assert install.ensure_torch(lambda q: True, torch_utils)
    assert FakeTorchLogic.calls == [(False, install.TORCH_REQUIREMENT)]   # asked once, by us


def test_torch_already_there_asks_nothing(torch_utils) -> None:
    FakeTorchLogic.installed = True
    try:
        assert install.ensure_torch(lambda q: pytest.fail("asked"), torch_utils)
    finally:
        FakeTorchLogic.installed = False


def test_without_the_pytorch_extension_the_user_is_told(monkeypatch) -> None:
    monkeypatch.setattr(install, "torch_installed", lambda: False)
    monkeypatch.setitem(sys.modules, "PyTorchUtils", None)
    with pytest.raises(RuntimeError, match="PyTorch' extension"):
        install.ensure_torch(lambda q: True)


def test_missing_packages_are_pip_installed_after_asking(torch_utils) -> None:
    requirements = {"scipy>=1.10": "scipy", "nothere-pkg>=1": "nothere_pkg_xyz"}
    assert install.missing_requirements(requirements) == ["nothere-pkg>=1"]
    assert install.missing_requirements() == []           # this environment has them all
    installed = []
    available = lambda module: module != "nothere_pkg_xyz"           # noqa: E731 (monai too)
    still = install.ensure_dependencies(lambda q: True, installed.append, torch_utils,
                                        requirements, available=available)
    assert [call[-1] for call in installed] == ["nothere-pkg>=1"] and still == ["nothere-pkg>=1"]
    installed.clear()
    still = install.ensure_dependencies(lambda q: False, installed.append, torch_utils,
                                        requirements, available=available)
    assert installed == [] and still == ["torch", "nothere-pkg>=1"]


# ------------------------------------------------------------------ issue 15 #3: keep Slicer's torch

PROTECTED = ("torch", "numpy", "simpleitk", "vtk")


def _installed_names(arguments: list[str]) -> list[str]:
    """Package names a pip argument list installs (options and the constraints file aside)."""
    names, skip = [], False
    for argument in arguments:
        if skip:
            skip = False
        elif argument in ("-c", "--constraint"):
            skip = True
        elif not argument.startswith("-"):
            names.append(re.split(r"[<>=!~ ]", argument)[0].lower())
    return names


@pytest.mark.parametrize("torch_version, monai", [("2.3.1+cu121", "monai>=1.3,<1.5"),
                                                  ("2.4.1", "monai>=1.3")])
def test_installing_never_touches_torch_numpy_simpleitk_or_vtk(torch_version, monai,
                                                               monkeypatch) -> None:
    monkeypatch.setattr(install, "torch_installed", lambda: True)
    monkeypatch.setattr(install, "torch_version", lambda: torch_version)
    versions = {"torch": torch_version, "numpy": "1.26.4", "SimpleITK": "2.3.1", "vtk": None}
    present = {"torch", "numpy", "SimpleITK", "vtk"}
    calls: list[list[str]] = []

    def pip_install(arguments):
        assert isinstance(arguments, list), "a list keeps Windows paths intact"
        calls.append(arguments)
        constraints = Path(arguments[arguments.index("-c") + 1]).read_text().split()
        assert constraints == [f"torch=={torch_version}", "numpy==1.26.4", "SimpleITK==2.3.1"]

    still = install.ensure_dependencies(
        lambda q: True, pip_install, types.SimpleNamespace(),
        {"scipy>=1.10": "scipy", "nibabel>=5": "nibabel"},
        available=lambda module: module in present, version=versions.get)
    assert len(calls) == 2
    assert _installed_names(calls[0]) == ["scipy", "nibabel"] and "--no-deps" not in calls[0]
    assert calls[1][-1] == monai and "--no-deps" in calls[1]      # monai alone, no torch with it
    assert not {n for call in calls for n in _installed_names(call)} & set(PROTECTED)
    assert still == ["scipy>=1.10", "nibabel>=5", monai]          # the fake pip installed nothing


def test_declined_torch_gets_no_monai(monkeypatch, torch_utils) -> None:
    calls = []
    answers = iter([False, True])                    # no to PyTorch, yes to the packages
    still = install.ensure_dependencies(lambda q: next(answers), calls.append, torch_utils,
                                        {"scipy>=1.10": "scipy"},
                                        available=lambda module: module in {"numpy", "SimpleITK",
                                                                            "vtk", "scipy"})
    assert calls == [] and still == ["torch", "monai"]


def test_too_old_torch_is_reported_not_replaced(monkeypatch) -> None:
    monkeypatch.setattr(install, "torch_installed", lambda: True)
    monkeypatch.setattr(install, "torch_version", lambda: "2.0.1")
    with pytest.raises(RuntimeError, match="PyTorch >=2.1, this Slicer has 2.0.1"):
        install.ensure_torch(lambda q: pytest.fail("asked"))
    assert install.parse_version("2.4.1+cu121") == (2, 4, 1)
    assert install.monai_requirement(None) == "monai>=1.3,<1.5"


# ------------------------------------------------------------------ issue 15 #7: no torch in the GUI

def test_environment_is_found_by_a_subprocess_without_importing_torch_here() -> None:
    pytest.importorskip("torch")
    code = textwrap.dedent("""
        import sys, time
        from WeakSegLib.slicer import install, jobs
        from WeakSegLib.slicer import controller, logic, nodes, jobs
        probe = install.EnvironmentProbe().start()
        while probe.poll() is None:
            time.sleep(0.05)
        print(probe.line)
        print("torch imported" if "torch" in sys.modules else "no torch")
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300, env=jobs.child_environment())
    line, verdict = result.stdout.strip().splitlines()[-2:]
    assert line.startswith("torch ") and " · CUDA: " in line, result.stderr
    assert verdict == "no torch"
    assert install.parse_environment_output("", "Traceback\nImportError: boom") == \
        "environment check failed: ImportError: boom"
