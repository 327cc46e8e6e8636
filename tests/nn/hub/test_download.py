"""Downloads never leave a bad file behind: truncated, garbage, too big, too slow or failed downloads are
not cached, errors name the URL, and a killed download's .part file is removed on the next start."""

import io
import os
import subprocess
import sys
import time

import pytest
import torch
from weights_server import files_in

from trainwright.checkpoints import CorruptCheckpointError, download_checkpoint, read_ckpt_state_dict
from trainwright.nn.hub import DownloadError, DownloadLimits, download_to_file, fetch_url, remove_stale_parts
from trainwright.nn.hub.cache import MANIFEST_NAME


def checkpoint_bytes(seed: int = 0, size: int = 64) -> bytes:
    """A small SuperGradients-layout checkpoint, as bytes."""
    generator = torch.Generator().manual_seed(seed)
    buffer = io.BytesIO()
    torch.save({"net": {"w": torch.randn(size, size, generator=generator)}, "epoch": 3}, buffer)
    return buffer.getvalue()


def test_a_good_download_is_cached_once(weights_server, weights_cache):
    url = weights_server.serve("/w.pth", checkpoint_bytes())
    first = read_ckpt_state_dict(url)
    second = read_ckpt_state_dict(url)
    assert torch.equal(first["net"]["w"], second["net"]["w"]) and weights_server.requests == ["/w.pth"]
    assert [name for name in files_in(weights_cache) if name.endswith("-w.pth")] and MANIFEST_NAME in files_in(weights_cache)


@pytest.mark.parametrize("route", [
    {"content_length": False, "cut_after": 700},  # no Content-Length, connection closed early
    {"content_length": True, "cut_after": 700},  # announced size not reached
])
def test_a_body_cut_short_is_never_cached(weights_server, weights_cache, route):
    url = weights_server.serve("/cut.pth", checkpoint_bytes(), **route)
    with pytest.raises(DownloadError, match=f"download of {url} (is truncated|is not usable)"):
        read_ckpt_state_dict(url)
    assert files_in(weights_cache) == []  # no file, no .part, no manifest entry


def test_a_complete_download_of_garbage_is_never_cached(weights_server, weights_cache):
    url = weights_server.serve("/garbage.pth", b"<html>Access denied</html>" * 40)
    with pytest.raises(DownloadError, match=f"download of {url} is not usable: .*could not be read"):
        read_ckpt_state_dict(url)
    assert files_in(weights_cache) == []
    # the server fixes its file: the next read downloads it (nothing bad was remembered)
    weights_server.serve("/garbage.pth", checkpoint_bytes())
    assert read_ckpt_state_dict(url)["epoch"] == 3


def test_http_errors_name_the_url(weights_server, weights_cache):
    with pytest.raises(DownloadError, match=f"download of {weights_server.url}/absent.pth failed: HTTP 404"):
        read_ckpt_state_dict(weights_server.url + "/absent.pth")
    weights_server.serve("/broken.pth", b"", status=500)
    with pytest.raises(DownloadError, match=f"download of {weights_server.url}/broken.pth failed: HTTP 500"):
        read_ckpt_state_dict(weights_server.url + "/broken.pth")
    assert files_in(weights_cache) == []


def test_unreachable_host_names_the_url(weights_cache):
    closed = _closed_port_url("/w.pth")
    with pytest.raises(DownloadError, match=f"cannot reach {closed}"):
        read_ckpt_state_dict(closed)
    assert files_in(weights_cache) == []


@pytest.mark.parametrize("content_length", [True, False])
def test_size_cap(weights_server, weights_cache, monkeypatch, content_length):
    monkeypatch.setenv("TRAINWRIGHT_DOWNLOAD_MAX_BYTES", "1000")
    url = weights_server.serve("/big.pth", checkpoint_bytes(), content_length=content_length)
    with pytest.raises(DownloadError, match=r"download of .*big.pth (refused|exceeded).*cap of 1000 bytes"):
        read_ckpt_state_dict(url)
    assert files_in(weights_cache) == []


def test_overall_deadline_stops_a_slow_drip(weights_server, weights_cache, monkeypatch):
    monkeypatch.setenv("TRAINWRIGHT_DOWNLOAD_DEADLINE_S", "0.3")
    url = weights_server.serve("/slow.pth", checkpoint_bytes(), chunk=256, chunk_delay_s=0.05)
    started = time.monotonic()
    with pytest.raises(DownloadError, match=r"download of .*slow.pth did not finish within 0.3 s"):
        read_ckpt_state_dict(url)
    assert time.monotonic() - started < 10
    assert files_in(weights_cache) == []


def test_a_stalled_server_times_out(weights_server, weights_cache, monkeypatch):
    monkeypatch.setenv("TRAINWRIGHT_DOWNLOAD_STALL_TIMEOUT_S", "0.2")
    url = weights_server.serve("/stall.pth", checkpoint_bytes(), stall_s=1.5)
    with pytest.raises(DownloadError, match=r"stall.pth stalled: nothing received for 0.2 s"):
        read_ckpt_state_dict(url)
    assert files_in(weights_cache) == []


def test_bad_limit_settings_are_named(monkeypatch):
    monkeypatch.setenv("TRAINWRIGHT_DOWNLOAD_DEADLINE_S", "soon")
    with pytest.raises(ValueError, match=r"\$TRAINWRIGHT_DOWNLOAD_DEADLINE_S must be a positive float, got 'soon'"):
        DownloadLimits.from_env()
    with pytest.raises(ValueError, match="max_bytes must be a positive number, got 0"):
        DownloadLimits(max_bytes=0)


def test_leftover_part_files_of_dead_processes_are_removed(weights_server, weights_cache):
    weights_cache.mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_part = weights_cache / f".abc-w.pth.{int(dead.stdout)}.x1y2z3.part"
    live_part = weights_cache / f".abc-w.pth.{os.getpid()}.q9w8e7.part"  # a download under way in this process
    for part in (dead_part, live_part):
        part.write_bytes(b"half a file")
    read_ckpt_state_dict(weights_server.serve("/w.pth", checkpoint_bytes()))
    assert dead_part.name not in files_in(weights_cache) and live_part.name in files_in(weights_cache)
    assert remove_stale_parts(weights_cache) == []


def test_file_urls_are_read_in_place(tmp_path, weights_cache):
    path = tmp_path / "w.pth"
    path.write_bytes(checkpoint_bytes())
    assert read_ckpt_state_dict(path.as_uri())["epoch"] == 3
    assert files_in(weights_cache) == []  # nothing copied


def test_download_checkpoint_to_a_chosen_file(tmp_path, weights_server):
    url = weights_server.serve("/w.pth", checkpoint_bytes())
    target = download_checkpoint(url, tmp_path / "out" / "w.pth")
    assert read_ckpt_state_dict(target)["epoch"] == 3
    weights_server.serve("/bad.pth", b"not a checkpoint at all")
    with pytest.raises(DownloadError, match="bad.pth is not usable"):
        download_checkpoint(weights_server.url + "/bad.pth", tmp_path / "out" / "bad.pth")
    assert files_in(tmp_path / "out") == ["w.pth"]


def test_download_to_file_with_a_verifier_of_ones_own(tmp_path, weights_server):
    url = weights_server.serve("/data.bin", b"payload")

    def refuse(path):
        raise CorruptCheckpointError(f"{path.name} is not what I want")

    with pytest.raises(DownloadError, match=r"data.bin is not usable: .*\.part is not what I want"):
        download_to_file(url, tmp_path / "data.bin", verify=refuse)
    assert files_in(tmp_path) == []
    digest = download_to_file(url, tmp_path / "data.bin", limits=DownloadLimits(max_bytes=7))
    assert (tmp_path / "data.bin").read_bytes() == b"payload" and len(digest) == 64


def test_fetch_url_of_a_file_url(tmp_path, weights_cache):
    path = tmp_path / "w.pth"
    path.write_bytes(checkpoint_bytes())
    cached = fetch_url(path.as_uri())
    assert cached.parent == weights_cache and cached.read_bytes() == path.read_bytes()


def _closed_port_url(path: str) -> str:
    import socket

    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"
