"""The weights cache trusts a URL's file on first use and checks it on every later use; the registry serves
SuperGradients' COCO checkpoints and names the URL and the local-file alternative when a download fails."""

import hashlib
import io
import json
import logging

import pytest
import torch
from test_download import _closed_port_url, checkpoint_bytes
from weights_server import files_in

from trainwright.checkpoints import CorruptCheckpointError, read_ckpt_state_dict
from trainwright.nn.hub import (
    PRETRAINED_WEIGHTS,
    DownloadError,
    MissingPretrainedWeightsException,
    cache_file_name,
    fetch_pretrained_weights,
    fetch_url,
    pretrained_weights_entry,
    register_pretrained_weights,
)
from trainwright.nn.hub.cache import MANIFEST_NAME


@pytest.fixture
def registry():
    """The pretrained-weights registry, restored after the test."""
    saved = dict(PRETRAINED_WEIGHTS)
    yield PRETRAINED_WEIGHTS
    PRETRAINED_WEIGHTS.clear()
    PRETRAINED_WEIGHTS.update(saved)


def _manifest(cache):
    return json.loads((cache / MANIFEST_NAME).read_text())


def test_first_download_records_the_hash(weights_server, weights_cache):
    body = checkpoint_bytes()
    url = weights_server.serve("/w.pth", body)
    path = fetch_url(url)
    record = _manifest(weights_cache)[url]
    assert record["sha256"] == hashlib.sha256(body).hexdigest() and record["size"] == len(body)
    assert record["file"] == path.name == cache_file_name(url) and record["recorded"][:2] == "20"


def test_a_damaged_cached_file_is_downloaded_again(weights_server, weights_cache, caplog):
    url = weights_server.serve("/w.pth", checkpoint_bytes())
    path = fetch_url(url)
    path.write_bytes(b"bit rot")
    with caplog.at_level(logging.WARNING):
        assert read_ckpt_state_dict(url)["epoch"] == 3
    assert "downloading" in caplog.text and len(weights_server.requests) == 2


def test_a_changed_file_on_the_server_is_refused(weights_server, weights_cache):
    url = weights_server.serve("/w.pth", checkpoint_bytes(seed=0))
    first = fetch_url(url)
    recorded = _manifest(weights_cache)
    weights_server.serve("/w.pth", checkpoint_bytes(seed=1))
    assert fetch_url(url) == first and len(weights_server.requests) == 1  # the cached copy still matches
    first.unlink()
    with pytest.raises(DownloadError, match=rf"w.pth failed its hash check: .*the file on the server changed; .*"
                                            rf"delete the entry of this URL from .*{MANIFEST_NAME}"):
        fetch_url(url)
    assert _manifest(weights_cache) == recorded and not first.exists()
    # the user accepts the new file by deleting the record
    (weights_cache / MANIFEST_NAME).write_text("{}")
    expected = torch.load(io.BytesIO(checkpoint_bytes(seed=1)), weights_only=True)
    assert torch.equal(read_ckpt_state_dict(url)["net"]["w"], expected["net"]["w"])


def test_a_pinned_hash_is_checked(weights_server, weights_cache):
    body = checkpoint_bytes()
    url = weights_server.serve("/w.pth", body)
    with pytest.raises(DownloadError, match=f"expected {'a' * 64}"):
        fetch_url(url, sha256="a" * 64)
    assert files_in(weights_cache) == []
    assert fetch_url(url, sha256=hashlib.sha256(body).hexdigest().upper()).read_bytes() == body


def test_a_file_copied_into_the_cache_is_checked_then_trusted(weights_server, weights_cache):
    url = weights_server.url + "/offline.pth"  # nothing served: the copy is all there is
    weights_cache.mkdir(parents=True)
    (weights_cache / cache_file_name(url)).write_bytes(checkpoint_bytes())
    assert read_ckpt_state_dict(url)["epoch"] == 3 and weights_server.requests == []
    assert url in _manifest(weights_cache)
    other = weights_server.url + "/junk.pth"
    (weights_cache / cache_file_name(other)).write_bytes(b"junk")
    with pytest.raises(CorruptCheckpointError, match="could not be read"):
        read_ckpt_state_dict(other)
    assert other not in _manifest(weights_cache)


def test_an_unreadable_manifest_is_reported_and_replaced(weights_server, weights_cache, caplog):
    weights_cache.mkdir(parents=True)
    (weights_cache / MANIFEST_NAME).write_text("{not json")
    url = weights_server.serve("/w.pth", checkpoint_bytes())
    with caplog.at_level(logging.WARNING):
        fetch_url(url)
    assert "unreadable" in caplog.text and url in _manifest(weights_cache)


def test_registry_holds_supergradients_coco_checkpoints():
    for arch in ("yolox_n", "yolox_t", "yolox_s", "yolox_m", "yolox_l", "ppyoloe_s", "ppyoloe_m", "ppyoloe_l",
                 "ppyoloe_x"):
        entry = pretrained_weights_entry(arch, "coco")
        assert entry.url == f"https://sg-hub-nv.s3.amazonaws.com/models/{arch}_coco.pth"
        assert entry.sha256 is None and entry.num_classes == 80
    with pytest.raises(MissingPretrainedWeightsException, match="'yolox_x'.*architectures with 'coco' weights: "
                                                                "ppyoloe_l, .*yolox_t"):
        pretrained_weights_entry("yolox_x", "coco")


def test_registered_weights_from_a_file_url(tmp_path, weights_cache, registry):
    source = tmp_path / "tiny_coco.pth"
    source.write_bytes(checkpoint_bytes())
    register_pretrained_weights("tiny", "coco", source.as_uri())
    path = fetch_pretrained_weights("tiny", "coco")
    assert path.parent == weights_cache and path.read_bytes() == source.read_bytes()


def test_unreachable_registry_entry_says_how_to_use_a_local_file(weights_cache, registry):
    url = _closed_port_url("/tiny_coco.pth")
    register_pretrained_weights("tiny", "coco", url)
    with pytest.raises(DownloadError) as info:
        fetch_pretrained_weights("tiny", "coco")
    message = str(info.value)
    assert "\n" not in message and f"cannot reach {url}" in message
    assert "checkpoint_path=FILE" in message and "model.checkpoint_path=FILE" in message


def test_registration_errors(registry):
    with pytest.raises(ValueError, match="64 hex digits, got 'abc'"):
        register_pretrained_weights("tiny", "coco", "https://example.invalid/t.pth", "abc")
    with pytest.raises(ValueError, match="must be http.*got 'ftp://x/t.pth'"):
        register_pretrained_weights("tiny", "coco", "ftp://x/t.pth")
    with pytest.raises(ValueError, match="num_classes must be a positive integer, got 0"):
        register_pretrained_weights("tiny", "mine", "https://example.invalid/t.pth", num_classes=0)
    register_pretrained_weights("tiny", "mine", "https://example.invalid/t.pth", num_classes=7)
    assert pretrained_weights_entry("tiny", "mine").num_classes == 7

