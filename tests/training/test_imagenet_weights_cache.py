"""The local demo finds torchvision's ImageNet weights without torch (localcloud.demo.weights): its copy of
torch's cache rule and of the checkpoint's URL must agree with torch and torchvision themselves."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import pytest
import torch.hub
from torchvision.models import ResNet18_Weights

from dogclf import contract
from localcloud.demo.weights import imagenet_checkpoint, torch_hub_dir


def test_the_url_is_torchvisions() -> None:
    assert ResNet18_Weights.IMAGENET1K_V1.url == contract.RESNET18_IMAGENET_URL


@pytest.mark.parametrize(
    "environ",
    [{"TORCH_HOME": "/t", "XDG_CACHE_HOME": "/x"}, {"XDG_CACHE_HOME": "/x"}, {"TORCH_HOME": "~/th"}, {}],
    ids=["torch-home", "xdg", "tilde", "default"],
)
def test_the_cache_dir_is_torch_hubs(monkeypatch, environ: dict[str, str]) -> None:
    for name in ("TORCH_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert str(torch_hub_dir()) == torch.hub.get_dir()
    # load_state_dict_from_url saves <hub>/checkpoints/<the URL path's last part>
    filename = Path(urlparse(ResNet18_Weights.IMAGENET1K_V1.url).path).name
    assert imagenet_checkpoint() == torch_hub_dir() / "checkpoints" / filename
