"""ResNet18 with a frozen backbone and a new linear head.

The backbone is frozen twice over: its parameters have no gradients, and it stays in eval mode
(BatchNorm uses its stored statistics) even when the model is put in train mode. That is what
makes its features a pure function of the image, hence cacheable.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

ARCH = "resnet18"
FEATURE_DIM = 512


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights could not be loaded (offline, missing file, wrong format)."""


def build_head(num_classes: int, seed: int | None = None) -> nn.Sequential:
    """The trainable head: 512-d features -> class logits.

    BatchNorm without affine before the linear layer, as in MAE's linear probing: it puts features of
    any scale (random-init or pretrained backbone) on a scale a linear head and one learning rate
    handle well. It has no parameters; momentum=None keeps an exact running average of the
    statistics, right after few steps too.

    Without ``seed`` it draws from the global RNG, as build_model does right after the backbone's
    random init. With ``seed`` the initial weights depend on (num_classes, seed) alone: what a trial
    from a features channel uses when the features job did not save the initial head for its seed.
    """
    if seed is None:
        return _new_head(num_classes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _new_head(num_classes)


def _new_head(num_classes: int) -> nn.Sequential:
    return nn.Sequential(
        nn.BatchNorm1d(FEATURE_DIM, affine=False, momentum=None), nn.Linear(FEATURE_DIM, num_classes)
    )


class FrozenBackboneClassifier(nn.Module):
    def __init__(self, backbone: nn.Module, num_classes: int, head: nn.Sequential | None = None) -> None:
        super().__init__()
        self.backbone = backbone  # resnet18 with fc = Identity: images -> 512-d pooled features
        self.head = head if head is not None else build_head(num_classes)
        for parameter in self.backbone.parameters():
            parameter.requires_grad_(False)
        self.backbone.eval()

    def train(self, mode: bool = True) -> FrozenBackboneClassifier:
        super().train(mode)
        self.backbone.eval()  # frozen BatchNorm: never update running statistics
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone(images)


def load_backbone(weights: str) -> nn.Module:
    """ResNet18 without its classifier. weights: "imagenet", "none" (random init) or a file path."""
    # Imported here: torchvision costs seconds of CPU to import, and a trial from a features channel
    # (head_trial.py) never builds the backbone.
    from torchvision.models import ResNet18_Weights, resnet18

    if weights == "none":
        backbone = resnet18(weights=None)
    elif weights == "imagenet":
        try:
            backbone = resnet18(weights=ResNet18_Weights.IMAGENET1K_V1)
        except (OSError, RuntimeError) as error:  # URLError is an OSError
            hub_dir = os.environ.get("TORCH_HOME", "~/.cache/torch")
            raise WeightsUnavailableError(
                "could not download the ImageNet ResNet18 weights "
                f"({ResNet18_Weights.IMAGENET1K_V1.url}): {error}. Offline, use --weights none "
                f"(random init) or --weights <path to a resnet18 state_dict>, "
                f"or pre-seed {hub_dir}/hub/checkpoints."
            ) from error
    else:
        path = Path(weights)
        if not path.is_file():
            raise WeightsUnavailableError(
                f"--weights {weights!r}: expected imagenet, none or an existing file"
            )
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # torch raises a variety of types for non-checkpoints
            raise WeightsUnavailableError(f"--weights {path}: not a loadable state_dict ({error})") from error
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        backbone = resnet18(weights=None)
        state = {key: value for key, value in state.items() if not key.startswith("fc.")}
        try:
            missing, unexpected = backbone.load_state_dict(state, strict=False)
        except (RuntimeError, AttributeError) as error:  # shape mismatches, non-dict payloads
            raise WeightsUnavailableError(f"--weights {path}: not a resnet18 state_dict ({error})") from error
        missing = [key for key in missing if not key.startswith("fc.")]
        if missing or unexpected:
            raise WeightsUnavailableError(
                f"--weights {path}: not a resnet18 state_dict "
                f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
            )
    backbone.fc = nn.Identity()
    return backbone


def build_model(num_classes: int, weights: str = "none") -> FrozenBackboneClassifier:
    """The backbone first (its random init draws from the global RNG, whatever the weights), then the
    head from the global RNG: after seed_everything(seed) the initial head is a function of the seed."""
    return FrozenBackboneClassifier(load_backbone(weights), num_classes)


def build_for_inference(num_classes: int) -> FrozenBackboneClassifier:
    """The same architecture with no weight download: model.pth supplies every parameter."""
    return FrozenBackboneClassifier(load_backbone("none"), num_classes)
