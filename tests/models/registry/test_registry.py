"""The model registries: versions claimed atomically and never overwritten, names kept inside, files checked."""

import json
import threading

import pytest

from trainwright.registry import LocalModelRegistry, open_registry


@pytest.fixture
def files(tmp_path):
    (tmp_path / "src").mkdir()
    paths = []
    for name, content in (("model.onnx", b"onnx bytes"), ("ckpt_best.pth", b"checkpoint bytes")):
        (tmp_path / "src" / name).write_bytes(content)
        paths.append(tmp_path / "src" / name)
    return paths


def test_versions_count_up_and_the_card_records_every_file(tmp_path, files):
    registry = LocalModelRegistry(tmp_path / "registry")
    first = registry.push("yolox-shapes", files, {"architecture": "yolox_n", "metrics": {"mAP@0.50": 0.5}})
    second = registry.push("yolox-shapes", files, {"architecture": "yolox_n"})
    assert (first.version, second.version) == ("1", "2")
    folder = tmp_path / "registry" / "yolox-shapes" / "1"
    assert sorted(p.name for p in folder.iterdir()) == ["ckpt_best.pth", "model.json", "model.onnx"]
    card = json.loads((folder / "model.json").read_text())
    assert card["name"] == "yolox-shapes" and card["version"] == "1" and card["metrics"] == {"mAP@0.50": 0.5}
    assert card["files"]["model.onnx"]["bytes"] == 10 and len(card["files"]["model.onnx"]["sha256"]) == 64
    assert [v.version for v in registry.list()] == ["1", "2"] and registry.show("yolox-shapes").version == "2"
    assert not [p for p in (tmp_path / "registry" / "yolox-shapes").iterdir() if p.name.startswith(".")]


def test_a_named_version_is_never_overwritten(tmp_path, files):
    registry = LocalModelRegistry(tmp_path / "registry")
    registry.push("m", files, {}, version="v1")
    before = (tmp_path / "registry" / "m" / "v1" / "model.json").read_bytes()
    with pytest.raises(FileExistsError, match="'v1' already exists.*never overwritten"):
        registry.push("m", files[:1], {"other": True}, version="v1")
    assert (tmp_path / "registry" / "m" / "v1" / "model.json").read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "registry" / "m").iterdir()) == ["v1"]  # no staging left behind


def test_concurrent_pushes_get_distinct_versions(tmp_path, files):
    registry = LocalModelRegistry(tmp_path / "registry")
    results, errors = [], []

    def push():
        try:
            results.append(registry.push("m", files, {}).version)
        except Exception as err:  # noqa: BLE001 - collected for the assertion
            errors.append(err)

    threads = [threading.Thread(target=push) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and sorted(results, key=int) == [str(i) for i in range(1, 9)]


@pytest.mark.parametrize("name", ["../x", "/abs", "a/b", "..", "", "x y", ".hidden", "a..b", "n" * 101])
def test_names_that_would_leave_the_registry_are_refused(tmp_path, files, name):
    registry = LocalModelRegistry(tmp_path / "registry")
    with pytest.raises(ValueError, match="is not allowed"):
        registry.push(name, files, {})
    with pytest.raises(ValueError, match="is not allowed"):
        registry.push("ok", files, {}, version=name)
    assert not (tmp_path / "x").exists() and not list((tmp_path / "registry").rglob("model.json"))


def test_pull_checks_every_sha256_and_never_overwrites(tmp_path, files):
    registry = LocalModelRegistry(tmp_path / "registry")
    registry.push("m", files, {})
    out = registry.pull("m", "1", tmp_path / "out")
    assert (out / "model.onnx").read_bytes() == b"onnx bytes" and (out / "model.json").is_file()
    with pytest.raises(FileExistsError, match="already has"):
        registry.pull("m", "1", tmp_path / "out")
    (tmp_path / "registry" / "m" / "1" / "model.onnx").write_bytes(b"tampered")
    with pytest.raises(ValueError, match="model.onnx does not match its SHA-256"):
        registry.pull("m", "1", tmp_path / "out2")
    assert not (tmp_path / "out2").exists()
    with pytest.raises(FileNotFoundError, match="'m' version '7' is not in the registry"):
        registry.show("m", "7")


def test_open_registry_picks_the_kind(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAINWRIGHT_REGISTRY", str(tmp_path / "env"))
    assert open_registry(None).root == tmp_path / "env"
    assert open_registry(str(tmp_path / "r")).root == tmp_path / "r"
    with pytest.raises(ValueError, match="names no MLflow tracking URI"):
        open_registry("mlflow:")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file"):
        open_registry(str(tmp_path / "file"))


def test_mlflow_registry_on_a_local_file_store(tmp_path, files):
    pytest.importorskip("mlflow")
    registry = open_registry(f"mlflow:{(tmp_path / 'mlruns').as_uri()}")
    first = registry.push("yolox-shapes", files, {"architecture": "yolox_n", "metrics": {"mAP@0.50": 0.25}})
    second = registry.push("yolox-shapes", files[:1], {"architecture": "yolox_n"})
    assert (first.version, second.version) == ("1", "2")
    assert [(v.name, v.version) for v in registry.list()] == [("yolox-shapes", "1"), ("yolox-shapes", "2")]
    card = registry.show("yolox-shapes", "1").card
    assert card["version"] == "1" and card["architecture"] == "yolox_n" and set(card["files"]) == {
        "model.onnx", "ckpt_best.pth"}
    out = registry.pull("yolox-shapes", None, tmp_path / "pulled")
    assert sorted(p.name for p in out.iterdir()) == ["model.json", "model.onnx"]  # the latest: version 2
    run = registry.client.get_run(registry.client.get_model_version("yolox-shapes", "1").run_id)
    assert run.data.metrics["mAP_0.50"] == 0.25
    with pytest.raises(ValueError, match="MLflow numbers the versions itself"):
        registry.push("yolox-shapes", files, {}, version="9")
    with pytest.raises(ValueError, match="is not allowed"):
        registry.push("../x", files, {})
