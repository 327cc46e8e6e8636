import hashlib
import json
import logging
import os
import pickle
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
from torch import nn

from trainwright import checkpoints
from trainwright.checkpoints import (
    PRETRAINED_WEIGHTS,
    CorruptCheckpointError,
    MissingPretrainedWeightsException,
    StrictLoad,
    UnsafeCheckpointError,
    copy_ckpt_to_local_folder,
    download_checkpoint,
    load_checkpoint_to_model,
    load_pretrained_weights,
    load_pretrained_weights_local,
    read_ckpt_state_dict,
    register_pretrained_weights,
)
from trainwright.nn.hub import MANIFEST_NAME, DownloadError

SG_CKPT_KEYS = {"net", "acc", "epoch", "metrics", "packages", "_best_ckpt_metrics", "optimizer_state_dict",
                "scaler_state_dict"}


class Tiny(nn.Module):
    def __init__(self, num_classes=3):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        self.head = nn.Linear(4, num_classes)
        self.processing_params = None

    def set_dataset_processing_params(self, class_names=None, input_size=None):
        self.processing_params = {"class_names": class_names, "input_size": input_size}


def _state(model, seed):
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.randn(v.shape, generator=gen).to(v.dtype) for k, v in model.state_dict().items()}


def _same(model, state):
    return all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def _trainer_ckpt(path, ema=True, **extra):
    ckpt = {"net": _state(Tiny(), 1), "optimizer_state_dict": {}, "scaler_state_dict": {}, "epoch": 3, "acc": 0.5,
            "best_metric": 0.5, "metrics": {}, "trainwright_version": "0.1",
            "processing_params": {"class_names": ["a", "b", "c"], "input_size": [32, 32]}, **extra}
    if ema:
        ckpt["ema_net"] = _state(Tiny(), 2)
    torch.save(ckpt, path)
    return ckpt


@pytest.fixture
def hub_dir(tmp_path, monkeypatch):
    hub = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    return hub


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        self.server.requests.append(self.path)
        body = self.server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(self.server.declared_size.get(self.path, len(body))))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    """A local HTTP server on 127.0.0.1 serving ``server.files`` (path -> bytes); nothing leaves the machine."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.files, httpd.declared_size, httpd.requests = {}, {}, []
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def _files_under(folder):
    """Names of the files under ``folder``, without the weights cache's manifest and its lock."""
    if not Path(folder).exists():
        return []
    return sorted(p.name for p in Path(folder).rglob("*") if p.is_file() and MANIFEST_NAME not in p.name)


# --- SuperGradients checkpoints -----------------------------------------------------------------------------


def _module_from_manifest(entries):
    """A module whose state dict has exactly the manifest's names, shapes and dtypes."""
    root = nn.Module()
    for name, shape, dtype in entries:
        *parents, leaf = name.split(".")
        module = root
        for part in parents:
            if part not in module._modules:
                module.add_module(part, nn.Module())
            module = module._modules[part]
        tensor = torch.zeros(shape, dtype=getattr(torch, dtype))
        if tensor.is_floating_point() and not leaf.startswith("running_"):
            module.register_parameter(leaf, nn.Parameter(tensor))
        else:
            module.register_buffer(leaf, tensor)
    return root


def test_read_every_sg_checkpoint(sg_models_dir):
    paths = sorted(sg_models_dir.glob("*_ckpt.pth"))
    assert paths
    for path in paths:
        ckpt = read_ckpt_state_dict(path)
        assert set(ckpt) == SG_CKPT_KEYS, path
        manifest = json.loads((sg_models_dir / path.name.replace("_ckpt.pth", "_state_dict_manifest.json")).read_text())
        assert [(k, list(v.shape)) for k, v in ckpt["net"].items()] == [(k, s) for k, s, _ in manifest["keys"]]


def test_load_sg_checkpoint_into_a_module_of_the_same_layout(sg_models_dir):
    path = sg_models_dir / "yolox_n_c3_ckpt.pth"
    manifest = json.loads((sg_models_dir / "yolox_n_c3_state_dict_manifest.json").read_text())
    model = _module_from_manifest(manifest["keys"])
    ckpt = load_checkpoint_to_model(model, str(path), strict=StrictLoad.ON)
    assert ckpt["metrics"]["tracked_metric_name"] == "mAP@0.50:0.95" and "optimizer_state_dict" in ckpt
    net = read_ckpt_state_dict(path)["net"]
    assert all(torch.equal(v, net[k]) for k, v in model.state_dict().items())
    # The backbone alone, from the `_backbone.` keys.
    model = _module_from_manifest(manifest["keys"])
    only = load_checkpoint_to_model(model, path, load_backbone=True)
    assert list(only) == ["net"]
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in net.items() if k.startswith("_backbone."))
    assert not torch.equal(loaded["_head._modules_list.0.bn.running_var"], net["_head._modules_list.0.bn.running_var"])


# --- trainer checkpoints and every flag ---------------------------------------------------------------------


def test_load_net_and_return_the_checkpoint(tmp_path):
    path = tmp_path / "ckpt_latest.pth"
    saved = _trainer_ckpt(path)
    model = Tiny()
    ckpt = load_checkpoint_to_model(model, path)
    assert _same(model, saved["net"]) and ckpt["epoch"] == 3 and "ema_net" in ckpt
    assert model.processing_params is None


def test_load_ema_as_net(tmp_path):
    path = tmp_path / "ckpt.pth"
    saved = _trainer_ckpt(path, ema=True)
    model = Tiny()
    ckpt = load_checkpoint_to_model(model, path, load_ema_as_net=True)
    assert _same(model, saved["ema_net"]) and all(torch.equal(ckpt["net"][k], v) for k, v in saved["ema_net"].items())


def test_load_ema_as_net_without_ema_names_the_file(tmp_path):
    path = tmp_path / "no_ema.pth"
    _trainer_ckpt(path, ema=False)
    with pytest.raises(ValueError, match=r"no_ema.pth has no 'ema_net'"):
        load_checkpoint_to_model(Tiny(), path, load_ema_as_net=True)


def test_load_weights_only_and_processing_params(tmp_path):
    path = tmp_path / "ckpt.pth"
    _trainer_ckpt(path)
    model = Tiny()
    ckpt = load_checkpoint_to_model(model, path, load_weights_only=True, load_processing_params=True)
    assert list(ckpt) == ["net"]
    assert model.processing_params == {"class_names": ["a", "b", "c"], "input_size": [32, 32]}


def test_processing_params_absent_or_unsupported(tmp_path, caplog):
    path = tmp_path / "ckpt.pth"
    _trainer_ckpt(path, processing_params=None)
    with caplog.at_level(logging.WARNING):
        load_checkpoint_to_model(Tiny(), path, load_processing_params=True)
    assert "has no processing_params" in caplog.text
    _trainer_ckpt(path)
    plain = nn.Module()
    plain.backbone, plain.head = Tiny().backbone, Tiny().head
    with pytest.raises(TypeError, match="set_dataset_processing_params"):
        load_checkpoint_to_model(plain, path, load_processing_params=True)


def test_load_backbone_uses_backbone_prefix(tmp_path):
    path = tmp_path / "ckpt.pth"
    saved = _trainer_ckpt(path)
    model = Tiny(num_classes=7)  # another head: only the backbone is loaded
    head_before = model.head.weight.detach().clone()
    assert list(load_checkpoint_to_model(model, path, load_backbone=True, strict="on")) == ["net"]
    assert torch.equal(model.backbone[0].weight, saved["net"]["backbone.0.weight"])
    assert torch.equal(model.head.weight, head_before)
    with pytest.raises(ValueError, match="`backbone` or `_backbone`"):
        load_checkpoint_to_model(nn.Linear(2, 2), path, load_backbone=True)


def test_checkpoint_missing_net(tmp_path):
    path = tmp_path / "odd.pth"
    torch.save({"epoch": 1, "weights": _state(Tiny(), 0)}, path)
    with pytest.raises(ValueError, match=r"odd.pth has no 'net' entry \(its keys: epoch, weights\)"):
        load_checkpoint_to_model(Tiny(), path)
    bare = tmp_path / "bare.pth"
    state = _state(Tiny(), 0)
    torch.save(state, bare)
    model = Tiny()
    assert list(load_checkpoint_to_model(model, bare)) == ["net"] and _same(model, state)


def test_mismatch_error_names_file_keys_and_shapes(tmp_path):
    path = tmp_path / "c5.pth"
    torch.save({"net": _state(Tiny(5), 0)}, path)
    with pytest.raises(RuntimeError, match=r"c5.pth(.|\n)*head.weight: checkpoint \[5, 4\] vs model \[3, 4\]"):
        load_checkpoint_to_model(Tiny(3), path, strict=StrictLoad.ON)


# --- safety and corrupt files -------------------------------------------------------------------------------


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


@pytest.mark.parametrize("fmt", ["torch_zip", "torch_legacy", "plain_pickle"])
def test_unsafe_pickle_is_refused_without_running_it(tmp_path, fmt):
    marker = tmp_path / "code_ran"
    path = tmp_path / "evil.pth"
    payload = {"net": {"w": torch.ones(1)}, "extra": _RunsCode(marker)}
    if fmt == "plain_pickle":
        path.write_bytes(pickle.dumps(payload, protocol=2))
    else:
        torch.save(payload, path, _use_new_zipfile_serialization=fmt == "torch_zip")
    with pytest.raises(UnsafeCheckpointError) as info:
        read_ckpt_state_dict(path)
    assert not marker.exists()
    assert "evil.pth" in str(info.value) and "allow_unsafe_pickle=True" in str(info.value)
    assert "runs any code" in str(info.value)
    with pytest.raises(UnsafeCheckpointError):
        load_checkpoint_to_model(Tiny(), path)
    assert not marker.exists()
    if fmt != "plain_pickle":
        # The explicit opt-in really unpickles (and so runs the file's code).
        assert read_ckpt_state_dict(path, allow_unsafe_pickle=True)["net"]["w"].item() == 1.0
        assert marker.is_dir()


@pytest.mark.parametrize("kind", ["empty", "truncated", "not_a_zip", "truncated_header", "random_bytes"])
def test_corrupt_files_are_reported_with_their_name(tmp_path, kind):
    good = tmp_path / "good.pth"
    torch.save({"net": _state(Tiny(), 0)}, good)
    data = good.read_bytes()
    content = {"empty": b"", "truncated": data[: len(data) // 2], "not_a_zip": b"these are not the weights",
               "truncated_header": data[:10], "random_bytes": bytes(range(256)) * 4}[kind]
    path = tmp_path / f"{kind}.pth"
    path.write_bytes(content)
    with pytest.raises(CorruptCheckpointError, match=f"{kind}.pth"):
        read_ckpt_state_dict(path)


def test_missing_file_and_bad_scheme(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        read_ckpt_state_dict(tmp_path / "nowhere.pth")
    with pytest.raises(ValueError, match="unsupported checkpoint URL scheme 'ftp'"):
        read_ckpt_state_dict("ftp://example.invalid/x.pth")


# --- URLs ---------------------------------------------------------------------------------------------------


def test_http_url_is_downloaded_once_into_the_hub_cache(tmp_path, server, hub_dir):
    path = tmp_path / "w.pth"
    saved = _trainer_ckpt(path)
    server.files["/models/w.pth"] = path.read_bytes()
    for _ in range(2):
        ckpt = read_ckpt_state_dict(server.url + "/models/w.pth")
        assert torch.equal(ckpt["net"]["head.weight"], saved["net"]["head.weight"])
    assert server.requests == ["/models/w.pth"]
    assert [p.endswith("-w.pth") for p in _files_under(hub_dir / "checkpoints")] == [True]
    model = Tiny()
    load_checkpoint_to_model(model, server.url + "/models/w.pth", load_ema_as_net=True)
    assert _same(model, saved["ema_net"])


def test_file_url(tmp_path):
    path = tmp_path / "w.pth"
    saved = _trainer_ckpt(path)
    assert read_ckpt_state_dict(path.as_uri())["epoch"] == saved["epoch"]


def test_truncated_or_missing_download_leaves_nothing(tmp_path, server, hub_dir):
    server.files["/t.pth"] = b"x" * 1000
    server.declared_size["/t.pth"] = 5000
    with pytest.raises(DownloadError, match="truncated: 1000 of 5000 bytes"):
        read_ckpt_state_dict(server.url + "/t.pth")
    with pytest.raises(DownloadError, match=f"download of {server.url}/absent.pth failed: HTTP 404"):
        read_ckpt_state_dict(server.url + "/absent.pth")
    assert _files_under(hub_dir) == []


def test_download_hash_check(tmp_path, server):
    _trainer_ckpt(tmp_path / "w.pth")
    payload = (tmp_path / "w.pth").read_bytes()
    server.files["/f.bin"] = payload
    good = hashlib.sha256(payload).hexdigest()
    target = download_checkpoint(server.url + "/f.bin", tmp_path / "d" / "f.bin", sha256=good.upper())
    assert target.read_bytes() == payload
    with pytest.raises(DownloadError, match=f"expected {'0' * 64}"):
        download_checkpoint(server.url + "/f.bin", tmp_path / "d" / "g.bin", sha256="0" * 64)
    assert _files_under(tmp_path / "d") == ["f.bin"]


# --- copy_ckpt_to_local_folder ------------------------------------------------------------------------------


def test_copy_local_with_and_without_overwrite(tmp_path):
    src_dir, dst_dir = tmp_path / "remote", tmp_path / "local"
    src_dir.mkdir()
    dst_dir.mkdir()
    saved = _trainer_ckpt(src_dir / "ckpt_best.pth")
    (dst_dir / "ckpt_best.pth").write_bytes(b"keep me")
    copied = copy_ckpt_to_local_folder(dst_dir, "ckpt_best.pth", src_dir)
    assert Path(copied).parent != dst_dir and (dst_dir / "ckpt_best.pth").read_bytes() == b"keep me"
    assert read_ckpt_state_dict(copied)["epoch"] == saved["epoch"]
    copied = copy_ckpt_to_local_folder(dst_dir, "ckpt_best.pth", src_dir, overwrite_local_ckpt=True)
    assert copied == str(dst_dir / "ckpt_best.pth") and read_ckpt_state_dict(copied)["epoch"] == 3
    assert _files_under(dst_dir) == ["ckpt_best.pth"]


def test_copy_from_url_weights_only(tmp_path, server, hub_dir):
    _trainer_ckpt(tmp_path / "ckpt_best.pth")
    server.files["/run/ckpt_best.pth"] = (tmp_path / "ckpt_best.pth").read_bytes()
    copied = copy_ckpt_to_local_folder(tmp_path / "out", "ckpt_best.pth", server.url + "/run/", path_src="url",
                                       overwrite_local_ckpt=True, load_weights_only=True)
    assert list(read_ckpt_state_dict(copied)) == ["net"]


def test_copy_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="path_src"):
        copy_ckpt_to_local_folder(tmp_path, "c.pth", "s3://bucket", path_src="s3")
    with pytest.raises(ValueError, match="remote_ckpt_source_dir"):
        copy_ckpt_to_local_folder(tmp_path, "c.pth", path_src="url")
    with pytest.raises(FileNotFoundError, match="c.pth"):
        copy_ckpt_to_local_folder(tmp_path, "c.pth", tmp_path / "nowhere")


# --- pretrained weights -------------------------------------------------------------------------------------


@pytest.fixture
def registry():
    """The registry emptied for the test (one dict object: every module that exports it sees the change)."""
    saved = dict(PRETRAINED_WEIGHTS)
    PRETRAINED_WEIGHTS.clear()
    yield checkpoints
    PRETRAINED_WEIGHTS.clear()
    PRETRAINED_WEIGHTS.update(saved)


def _serve_weights(tmp_path, server, name="tiny_coco.pth"):
    path = tmp_path / name
    saved = _trainer_ckpt(path)
    data = path.read_bytes()
    server.files["/" + name] = data
    return saved, hashlib.sha256(data).hexdigest()


def test_pretrained_download_verify_and_partial_head(tmp_path, server, hub_dir, registry, caplog):
    saved, sha = _serve_weights(tmp_path, server)
    register_pretrained_weights("tiny", "coco", server.url + "/tiny_coco.pth", sha)
    model = Tiny(num_classes=7)
    with caplog.at_level(logging.WARNING):
        report = load_pretrained_weights(model, "tiny", "coco")
    # EMA weights are preferred; the head (7 classes vs 3) is skipped and reported.
    assert torch.equal(model.backbone[0].weight, saved["ema_net"]["backbone.0.weight"])
    assert [k for k, _, _ in report.shape_mismatch] == ["head.weight", "head.bias"] and "head.weight" in caplog.text
    cached = next((hub_dir / "checkpoints").glob("*-tiny_coco.pth"))
    assert _files_under(hub_dir) == [cached.name]
    # Cached and valid: no second request. Same head: every tensor loads.
    model = Tiny()
    assert not load_pretrained_weights(model, "tiny", "coco").shape_mismatch and _same(model, saved["ema_net"])
    assert len(server.requests) == 1
    # A damaged cache entry is detected and downloaded again.
    cached.write_bytes(b"garbage")
    load_pretrained_weights(Tiny(), "tiny", "coco")
    assert len(server.requests) == 2 and hashlib.sha256(cached.read_bytes()).hexdigest() == sha


def test_pretrained_corrupt_download_is_not_cached(tmp_path, server, hub_dir, registry):
    _, sha = _serve_weights(tmp_path, server)
    server.files["/tiny_coco.pth"] = server.files["/tiny_coco.pth"][:-100] + b"\0" * 100
    register_pretrained_weights("tiny", "coco", server.url + "/tiny_coco.pth", sha)
    with pytest.raises(DownloadError, match="hash check"):
        load_pretrained_weights(Tiny(), "tiny", "coco")
    server.declared_size["/tiny_coco.pth"] = len(server.files["/tiny_coco.pth"]) + 10
    with pytest.raises(DownloadError, match="truncated"):
        load_pretrained_weights(Tiny(), "tiny", "coco")
    assert _files_under(hub_dir) == []


def test_pretrained_registry_errors(registry):
    with pytest.raises(MissingPretrainedWeightsException, match="no weights 'imagenet'.*'tiny'") as info:
        load_pretrained_weights(Tiny(), "tiny", "imagenet")
    assert info.value.desc.startswith("no weights")
    with pytest.raises(ValueError, match="64 hex digits"):
        register_pretrained_weights("tiny", "coco", "http://127.0.0.1/x.pth", "abc")
    register_pretrained_weights("tiny", "coco", "http://127.0.0.1/x.pth", "a" * 64)
    with pytest.raises(ValueError, match="already registered"):
        register_pretrained_weights("tiny", "coco", "http://127.0.0.1/y.pth", "a" * 64)
    register_pretrained_weights("tiny", "coco", "http://127.0.0.1/y.pth", "a" * 64, overwrite=True)
    assert checkpoints.PRETRAINED_WEIGHTS[("tiny", "coco")].url.endswith("y.pth")


def test_pretrained_local_file(tmp_path):
    path = tmp_path / "w.pth"
    saved = _trainer_ckpt(path, ema=False)
    model = Tiny()
    report = load_pretrained_weights_local(model, "tiny", path)
    assert _same(model, saved["net"]) and len(report.loaded) == len(saved["net"])
    renamed = {f"m.{i}": v for i, v in enumerate(saved["net"].values())}
    torch.save({"net": renamed}, path)
    model = Tiny()
    load_pretrained_weights_local(model, "tiny", path)  # other names, same order and shapes
    assert _same(model, saved["net"])
