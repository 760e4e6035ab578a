"""First-run setup logic without Slicer: environment line, torch via PyTorchUtils, pip packages."""
from __future__ import annotations

import sys
import types

import pytest

from WeakSegLib.slicer import install


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
    requirements = {"numpy>=1.24": "numpy", "nothere-pkg>=1": "nothere_pkg_xyz"}
    assert install.missing_requirements(requirements) == ["nothere-pkg>=1"]
    assert install.missing_requirements() == []           # this environment has them all
    installed = []
    still = install.ensure_dependencies(lambda q: True, installed.append, torch_utils,
                                        requirements)
    assert installed == ['"nothere-pkg>=1"'] and still == ["nothere-pkg>=1"]
    installed.clear()
    still = install.ensure_dependencies(lambda q: False, installed.append, torch_utils,
                                        requirements)
    assert installed == [] and still == ["torch", "nothere-pkg>=1"]
