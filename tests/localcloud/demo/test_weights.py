"""The demo's --weights (so that the demo's model starts from ImageNet features, as the cloud's does):
ImageNet when torchvision's file is cached (or, for an explicit --weights imagenet, downloadable), else
a plain fallback or a clear stop. Never the network: every download here goes to a server on 127.0.0.1
or to a stand-in that fails."""

from __future__ import annotations

import functools
import hashlib
import threading
import time
import urllib.error
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from localcloud.demo import main as demo
from localcloud.demo import weights
from localcloud.demo.run import DemoSettings
from localcloud.demo.summary import EXIT_WEIGHTS_UNAVAILABLE, Progress
from localcloud.demo.weights import (
    WeightsUnavailableError,
    download_checkpoint,
    imagenet_checkpoint,
    resolve_weights,
    torch_hub_dir,
)

FILENAME = "resnet18-f37072fd.pth"


def no_download(url: str, destination: Path) -> None:
    raise AssertionError(f"tried to download {url}")


def offline(url: str, destination: Path) -> None:
    raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")


@pytest.fixture
def torch_home(tmp_path: Path) -> dict[str, str]:
    return {"TORCH_HOME": str(tmp_path / "torch")}


def seed_cache(environ: dict[str, str]) -> Path:
    checkpoint = imagenet_checkpoint(environ)
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"weights")
    return checkpoint


def test_the_cache_follows_torchs_rule(tmp_path: Path) -> None:
    assert torch_hub_dir({"TORCH_HOME": "/t", "XDG_CACHE_HOME": "/x"}) == Path("/t/hub")
    assert torch_hub_dir({"XDG_CACHE_HOME": "/x"}) == Path("/x/torch/hub")
    assert torch_hub_dir({"HOME": str(tmp_path)}) == Path.home() / ".cache/torch/hub"
    assert imagenet_checkpoint({"TORCH_HOME": "/t"}) == Path("/t/hub/checkpoints") / FILENAME
    assert weights.contract.RESNET18_IMAGENET_URL.endswith("/" + FILENAME)


def test_auto_uses_the_cached_file(torch_home) -> None:
    checkpoint = seed_cache(torch_home)
    choice = resolve_weights("auto", torch_home, download=no_download)
    assert choice.weights == "imagenet" and str(checkpoint) in choice.note


def test_auto_without_the_file_falls_back_and_says_what_that_means(torch_home) -> None:
    choice = resolve_weights("auto", torch_home, download=no_download)  # never downloads
    assert choice.weights == "none"
    cache = str(Path(torch_home["TORCH_HOME"]) / "hub" / "checkpoints")
    assert f"not in torchvision's cache ({cache}" in choice.note
    assert "random-init backbone" in choice.note and "Accuracy on real photos will be low" in choice.note
    assert f"put {FILENAME} in {cache}" in choice.note


def test_none_is_random_init_whatever_the_cache_holds(torch_home) -> None:
    seed_cache(torch_home)
    assert resolve_weights("none", torch_home, download=no_download).weights == "none"


def test_explicit_imagenet_uses_the_cache_before_any_download(torch_home) -> None:
    seed_cache(torch_home)
    assert resolve_weights("imagenet", torch_home, download=no_download).weights == "imagenet"


def test_explicit_imagenet_that_cannot_be_had_is_a_clear_error(torch_home) -> None:
    with pytest.raises(WeightsUnavailableError) as raised:
        resolve_weights("imagenet", torch_home, download=offline)
    message = str(raised.value)
    assert "could not be downloaded from https://download.pytorch.org/models/" in message
    assert "name resolution" in message and f"Put {FILENAME} in" in message
    assert not imagenet_checkpoint(torch_home).exists()


def test_an_unknown_choice_is_refused(torch_home) -> None:
    with pytest.raises(ValueError, match="expected one of auto, imagenet, none"):
        resolve_weights("pretrained", torch_home)


# ------------------------------------------------------------------ the download, against 127.0.0.1


class Files(BaseHTTPRequestHandler):
    files: ClassVar[dict[str, bytes]] = {}

    def do_GET(self) -> None:
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Files)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_a_download_lands_under_its_name_when_the_hash_matches(server, tmp_path: Path) -> None:
    body = b"pretend checkpoint"
    name = f"resnet18-{hashlib.sha256(body).hexdigest()[:8]}.pth"
    Files.files = {f"/{name}": body}
    destination = tmp_path / "hub" / "checkpoints" / name
    download_checkpoint(f"{server}/{name}", destination)
    assert destination.read_bytes() == body
    assert sorted(p.name for p in destination.parent.iterdir()) == [name]


def test_failed_downloads_are_quick_and_leave_nothing_behind(server, tmp_path: Path) -> None:
    Files.files = {f"/{FILENAME}": b"not the real weights"}  # sha256 does not start with f37072fd
    destination = tmp_path / "checkpoints" / FILENAME
    started = time.monotonic()
    with pytest.raises(OSError, match="does not match f37072fd"):
        download_checkpoint(f"{server}/{FILENAME}", destination)
    with pytest.raises(urllib.error.HTTPError, match="404"):
        download_checkpoint(f"{server}/missing-0000.pth", destination)
    assert time.monotonic() - started < 5
    assert list(destination.parent.iterdir()) == []  # no partial or temp file


def test_imagenet_through_a_failing_download_is_a_weights_error(server, torch_home) -> None:
    Files.files = {}
    fetch = functools.partial(
        lambda url, destination: download_checkpoint(f"{server}/{FILENAME}", destination)
    )
    with pytest.raises(WeightsUnavailableError, match="HTTP Error 404"):
        resolve_weights("imagenet", torch_home, download=fetch)


# ------------------------------------------------------------------ the demo's flag and outcome


def test_the_flag_defaults_to_auto_and_programmatic_runs_to_random_init() -> None:
    assert demo.parse_args([]).weights == "auto"
    assert demo.parse_args(["--weights", "imagenet"]).weights == "imagenet"
    assert DemoSettings().weights == "none"  # tests and benches: offline and deterministic
    with pytest.raises(SystemExit):
        demo.parse_args(["--weights", "pretrained"])


@pytest.mark.parametrize(("cached", "expected"), [(True, "imagenet"), (False, "none")])
def test_the_resolved_weights_become_the_template_parameter(
    monkeypatch, torch_home, capsys, cached: bool, expected: str
) -> None:
    monkeypatch.setenv("TORCH_HOME", torch_home["TORCH_HOME"])
    if cached:
        seed_cache(torch_home)
    settings, note = demo._backbone_weights(DemoSettings(weights="auto"), Progress())
    assert settings.parameter_overrides()["PretrainedWeights"] == expected
    assert note in capsys.readouterr().out
    assert ("random-init backbone" in note) is not cached


def test_explicit_imagenet_unavailable_stops_the_demo_before_anything_starts(
    monkeypatch, torch_home, tmp_path: Path, capsys
) -> None:
    monkeypatch.setenv("TORCH_HOME", torch_home["TORCH_HOME"])
    monkeypatch.setattr(demo, "resolve_weights", functools.partial(weights.resolve_weights, download=offline))
    state = tmp_path / "state"
    result = demo.run_demo(DemoSettings(weights="imagenet", state_dir=state))
    assert result.exit_code == EXIT_WEIGHTS_UNAVAILABLE == 4
    assert "could not be downloaded" in result.reason
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err and "FAILED (exit 4): --weights imagenet" in out.out
    assert not state.exists()  # no state dir, no cloud
