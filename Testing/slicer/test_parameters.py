"""The parameter node: parameterNodeWrapper's storage format, and a scene save/load round trip."""
from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from WeakSegLib.slicer import nodes
from WeakSegLib.slicer.parameters import (WeakSegParameters, get_parameter_node,
                                          read_parameters, update_parameters, write_parameters)


def _params(flair, t1) -> WeakSegParameters:
    return WeakSegParameters(flair=flair, t1=t1, reference=flair, model_dir=Path("/runs/r1"),
                             device="cpu", threshold=0.35, postprocess=True,
                             postprocess_ops="largest,min_volume:50", train_source="volumes",
                             ranges={"caseA": (40, 90), "caseB": (3, 7)}, reviewer="dr a")


def test_singleton_node_like_scripted_module_logic(scene) -> None:
    node = get_parameter_node(scene)
    assert node.IsA("vtkMRMLScriptedModuleNode")
    assert node.GetSingletonTag() == "WeakSeg" and node.GetAttribute("ModuleName") == "WeakSeg"
    assert get_parameter_node(scene) is node
    assert scene.GetNumberOfNodesByClass("vtkMRMLScriptedModuleNode") == 1


def test_storage_format_is_parameter_node_wrappers(scene, add_volume) -> None:
    """The raw strings, as Slicer's serializers write them (serializers.py)."""
    flair, t1 = add_volume(scene, "c_flair"), add_volume(scene, "c_t1")
    node = get_parameter_node(scene)
    write_parameters(node, _params(flair, t1))
    # NodeSerializer: an empty parameter plus a node reference of the same name
    assert node.GetParameter("flairVolume") == "" and node.HasParameter("flairVolume")
    assert node.GetNodeReferenceID("flairVolume") == flair.GetID()
    assert node.GetNodeReferenceID("t2Volume") is None and node.HasParameter("t2Volume")
    # Number/String/Bool serializers
    assert node.GetParameter("threshold") == "0.35"
    assert node.GetParameter("device") == "cpu"
    assert node.GetParameter("postprocess") == "True"
    # Union[Path, None]: index 0 holds a path, index 1 marks None
    assert node.GetParameter("modelPath.0") == "/runs/r1" and not node.HasParameter("modelPath.1")
    assert node.GetParameter("exportPath.1") == "True" and not node.HasParameter("exportPath.0")
    # dict[str, tuple[int, int]]: a list of (key, (first, last)) tuples
    assert [node.GetParameter(n) for n in ("tumourRanges.len", "tumourRanges.0.0",
                                           "tumourRanges.0.1.0", "tumourRanges.0.1.1",
                                           "tumourRanges.1.0")] == ["2", "caseA", "40", "90",
                                                                    "caseB"]
    # shrinking the dict removes the stale entries, as ListSerializer does
    update_parameters(node, ranges={"caseC": (1, 2)})
    assert node.GetParameter("tumourRanges.len") == "1"
    assert not node.HasParameter("tumourRanges.1.0")


def test_round_trip_and_defaults(scene, add_volume) -> None:
    flair, t1 = add_volume(scene, "c_flair"), add_volume(scene, "c_t1")
    node = get_parameter_node(scene)
    assert read_parameters(node) == WeakSegParameters()          # nothing stored: defaults
    written = _params(flair, t1)
    write_parameters(node, written)
    back = read_parameters(node)
    assert back == written
    assert back.inputs == {"flair": flair, "t1": t1}
    changed = update_parameters(node, model_dir=None, threshold=0.5)
    assert changed.model_dir is None and read_parameters(node).threshold == 0.5
    with pytest.raises(ValueError):
        update_parameters(node, device="tpu")
    with pytest.raises(AttributeError):
        update_parameters(node, colour="red")


def _check_restored(scene, original: WeakSegParameters) -> None:
    back = read_parameters(get_parameter_node(scene))
    assert back.flair is not None and back.flair.GetName() == original.flair.GetName()
    assert back.reference is back.flair and back.t1.GetName() == original.t1.GetName()
    assert back.flair.GetScene() is scene and back.flair.GetImageData() is not None
    for name in ("model_dir", "device", "threshold", "postprocess", "postprocess_ops", "ranges",
                 "train_source", "reviewer", "export_dir"):
        assert getattr(back, name) == getattr(original, name), name
    assert scene.GetNumberOfNodesByClass("vtkMRMLScriptedModuleNode") == 1


@pytest.mark.realdata
def test_survives_mrml_save_and_load(scene, brats_sample, tmp_path) -> None:
    case = brats_sample / "Brats18_CBICA_AAB_1"
    flair = nodes.load_volume_node(scene, case / "Brats18_CBICA_AAB_1_flair.nii.gz")
    t1 = nodes.load_volume_node(scene, case / "Brats18_CBICA_AAB_1_t1.nii.gz")
    original = _params(flair, t1)
    write_parameters(get_parameter_node(scene), original)
    path = tmp_path / "scene.mrml"
    scene.SetURL(str(path))
    scene.SetRootDirectory(str(tmp_path))
    assert scene.Commit()
    loaded = nodes.new_scene()
    loaded.SetURL(str(path))
    assert loaded.Connect()
    _check_restored(loaded, original)
    loaded.Clear(1)


def test_survives_mrb_save_and_load(scene, add_volume, tmp_path) -> None:
    import slicer

    flair, t1 = add_volume(scene, "c_flair"), add_volume(scene, "c_t1", seed=1)
    for node in (flair, t1):                      # MRB packs the data: give each a storage node
        storage = scene.AddNewNodeByClass("vtkMRMLVolumeArchetypeStorageNode")
        storage.SetFileName(str(tmp_path / f"{node.GetName()}.nrrd"))
        node.SetAndObserveStorageNodeID(storage.GetID())
    original = _params(flair, t1)
    write_parameters(get_parameter_node(scene), original)
    path = tmp_path / "scene.mrb"
    assert scene.WriteToMRB(str(path))
    loaded = nodes.new_scene()
    cache = slicer.vtkCacheManager()                  # ReadFromMRB unpacks into the cache
    cache.SetRemoteCacheDirectory(tempfile.mkdtemp(dir=tmp_path))
    io = slicer.vtkDataIOManager()
    io.SetCacheManager(cache)
    loaded.SetCacheManager(cache)
    loaded.SetDataIOManager(io)
    assert loaded.ReadFromMRB(str(path))
    _check_restored(loaded, original)
    loaded.Clear(1)
