"""The extension's CMake files, configured with CMake against a stand-in Slicer package.

Slicer's build tree is not here, so ``find_package(Slicer)`` finds a small config that records
what ``slicerMacroBuildScriptedModule`` receives and checks it as the real macro does (every
file exists); the install layout follows ctkMacroCompilePythonScript (absolute paths relative to
the binary dir). Skipped without a ``cmake`` executable.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

STAND_IN = r"""
set(Slicer_USE_FILE ${CMAKE_CURRENT_LIST_DIR}/UseSlicer.cmake)
set(Slicer_EXTENSION_GENERATE_CONFIG ${CMAKE_CURRENT_LIST_DIR}/Empty.cmake)
set(Slicer_EXTENSION_CPACK ${CMAKE_CURRENT_LIST_DIR}/Empty.cmake)
"""
USE_SLICER = r"""
set(BUILD_TESTING ON)
macro(slicerMacroBuildScriptedModule)
  cmake_parse_arguments(MY "WITH_GENERIC_TESTS" "NAME" "SCRIPTS;RESOURCES" ${ARGN})
  set(_installed)
  foreach(f ${MY_SCRIPTS} ${MY_RESOURCES})
    if(IS_ABSOLUTE ${f})
      set(_abs ${f})
      file(RELATIVE_PATH _rel ${CMAKE_CURRENT_BINARY_DIR} ${f})
    else()
      set(_abs ${CMAKE_CURRENT_SOURCE_DIR}/${f})
      set(_rel ${f})
    endif()
    if(NOT EXISTS ${_abs})
      message(FATAL_ERROR "slicerMacroBuildScriptedModule given nonexistent file ${f}")
    endif()
    list(APPEND _installed "\"${_rel}\"")
  endforeach()
  string(REPLACE ";" "," _installed "${_installed}")
  file(WRITE ${CMAKE_BINARY_DIR}/module.json
    "{\"name\": \"${MY_NAME}\", \"generic_tests\": \"${MY_WITH_GENERIC_TESTS}\", \"files\": [${_installed}]}")
endmacro()
macro(slicer_add_python_unittest)
  cmake_parse_arguments(T "" "SCRIPT" "" ${ARGN})
  file(APPEND ${CMAKE_BINARY_DIR}/unittests.txt "${T_SCRIPT}\n")
endmacro()
"""


def _configure(root: Path, source: Path) -> Path:
    """Configure ``source`` against the stand-in Slicer package; the build folder."""
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.skip("cmake is not installed")
    config = root / "slicer"
    config.mkdir()
    (config / "SlicerConfig.cmake").write_text(STAND_IN)
    (config / "UseSlicer.cmake").write_text(USE_SLICER)
    (config / "Empty.cmake").write_text("")
    build = root / "build"
    result = subprocess.run([cmake, "-S", str(source), "-B", str(build),
                             f"-DSlicer_DIR={config}"], capture_output=True, text=True)
    if result.returncode and "CMAKE_C_COMPILER" in result.stdout + result.stderr:
        pytest.skip("cmake finds no C compiler (project() needs one)")
    assert result.returncode == 0, result.stdout + result.stderr
    return build


@pytest.fixture(scope="module")
def configured(tmp_path_factory) -> Path:
    return _configure(tmp_path_factory.mktemp("cmake"), REPO)


def _model_files(root: Path) -> set[str]:
    """The files under ``root/WeakSeg/Resources/Models`` the extension must install (hidden
    ones aside), as paths relative to the module folder."""
    models = root / "WeakSeg" / "Resources" / "Models"
    return {str(p.relative_to(root / "WeakSeg")).replace("\\", "/")
            for p in models.rglob("*") if p.is_file()
            and not any(part.startswith(".") or part == "__pycache__"
                        for part in p.relative_to(models).parts)} if models.is_dir() else set()


def test_module_lists_itself_every_library_file_and_its_resources(configured) -> None:
    module = json.loads((configured / "module.json").read_text())
    assert module["name"] == "WeakSeg" and module["generic_tests"] == "TRUE"
    files = set(module["files"])
    library = {str(p.relative_to(REPO)).replace("\\", "/")
               for p in (REPO / "WeakSegLib").rglob("*.py") if "__pycache__" not in p.parts}
    assert {"WeakSeg.py", "Resources/UI/WeakSeg.ui", "Resources/Icons/WeakSeg.png"} <= files
    assert library <= files                      # installed as WeakSegLib/... beside WeakSeg.py
    assert "WeakSegLib/slicer/controller.py" in files and "WeakSegLib/cli.py" in files
    assert (configured / "unittests.txt").read_text().split() == ["WeakSeg.py"]
    # the shipped default model, when the repository has it, with every file it holds
    assert _model_files(REPO) <= files
    assert {f for f in files if f.startswith("Resources/Models/")} == _model_files(REPO)


def test_the_shipped_model_is_installed_with_every_file(tmp_path) -> None:
    """A copy of the extension's CMake tree with a default bundle of nested files (and hidden
    ones that must stay behind): every bundle file is a resource of the module, installed under
    Resources/Models/default beside WeakSegLib, where WeakSegLib.paths looks for it."""
    source = tmp_path / "source"
    source.mkdir()
    shutil.copy2(REPO / "CMakeLists.txt", source / "CMakeLists.txt")
    shutil.copytree(REPO / "WeakSeg", source / "WeakSeg",
                    ignore=shutil.ignore_patterns("__pycache__", "Models"))
    shutil.copytree(REPO / "WeakSegLib", source / "WeakSegLib",
                    ignore=shutil.ignore_patterns("__pycache__"))
    model = source / "WeakSeg" / "Resources" / "Models" / "default"
    for name in ("manifest.json", "model_card.json", "classifier/model.pt",
                 "classifier/metrics.json", "self_train/model.pt", ".gitkeep",
                 "converter/.DS_Store"):
        (model / name).parent.mkdir(parents=True, exist_ok=True)
        (model / name).write_bytes(b"x")
    build = _configure(tmp_path, source)
    files = set(json.loads((build / "module.json").read_text())["files"])
    models = {f for f in files if f.startswith("Resources/Models/")}
    assert models == {f"Resources/Models/default/{name}" for name in (
        "manifest.json", "model_card.json", "classifier/model.pt", "classifier/metrics.json",
        "self_train/model.pt")} == _model_files(source)
    # installed beside WeakSegLib/ (qt-scripted-modules/): WeakSegLib/paths.py's parent folder
    assert "WeakSegLib/paths.py" in files


def test_extension_metadata() -> None:
    text = (REPO / "CMakeLists.txt").read_text()

    def value(name: str) -> str:
        match = re.search(rf'set\({name} "([^"]*)"\)', text)
        assert match, name
        return match.group(1)

    assert value("EXTENSION_HOMEPAGE") == "https://github.com/weakseg/WeakSeg"
    assert value("EXTENSION_CATEGORY") == "Segmentation"
    assert value("EXTENSION_DEPENDS") == "PyTorch"
    assert value("EXTENSION_ICONURL").endswith("WeakSeg.png")
    assert value("EXTENSION_SCREENSHOTURLS").startswith("https://")
    # both images are files of this repository, at the path the raw URL names (issue 15)
    raw = "https://raw.githubusercontent.com/weakseg/WeakSeg/main/"
    for name in ("EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS"):
        for url in value(name).split():
            assert url.startswith(raw) and (REPO / url[len(raw):]).is_file(), url
    assert value("EXTENSION_CONTRIBUTORS") and len(value("EXTENSION_DESCRIPTION")) > 40
    assert "add_subdirectory(WeakSeg)" in text
