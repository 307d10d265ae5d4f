"""The one transform preset module, shared by training and inference (torchvision references style).

Eval (and non-augmented training, which makes backbone features cacheable): resize the short side
to image_size * 256/224, centre-crop image_size, normalize with ImageNet statistics.
Train with augmentation: random resized crop + horizontal flip, then the same normalization.
torchvision is imported when a preset is built, not with this module: a trial from a features channel
(head_trial.py) needs resize_size_for only, and torchvision costs seconds of CPU to import.
"""

from __future__ import annotations

import numpy as np
import torch

from dogclf.contract import eval_resize_size

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def resize_size_for(image_size: int) -> int:
    return eval_resize_size(image_size)  # defined once in the contract (classify downscales to it)


class ClassificationPresetTrain:
    def __init__(
        self,
        *,
        crop_size: int,
        hflip_prob: float = 0.5,
        mean: tuple[float, ...] = IMAGENET_MEAN,
        std: tuple[float, ...] = IMAGENET_STD,
    ) -> None:
        from torchvision import transforms

        # Random crops may zoom in on half the image: decode in full (images.py).
        self.decode_size: int | None = None
        steps: list = [transforms.RandomResizedCrop(crop_size, scale=(0.5, 1.0), antialias=True)]
        if hflip_prob > 0:
            steps.append(transforms.RandomHorizontalFlip(hflip_prob))
        steps += [transforms.ToTensor(), transforms.Normalize(mean=mean, std=std)]
        self.transforms = transforms.Compose(steps)

    def __call__(self, image):
        return self.transforms(image)


class ClassificationPresetEval:
    def __init__(
        self,
        *,
        crop_size: int,
        resize_size: int | None = None,
        mean: tuple[float, ...] = IMAGENET_MEAN,
        std: tuple[float, ...] = IMAGENET_STD,
    ) -> None:
        from torchvision import transforms

        # The short side Resize brings images to: the decoder need not produce more (images.py).
        self.decode_size = resize_size or resize_size_for(crop_size)
        self.transforms = transforms.Compose(
            [
                transforms.Resize(self.decode_size, antialias=True),
                transforms.CenterCrop(crop_size),
                transforms.ToTensor(),
                transforms.Normalize(mean=mean, std=std),
            ]
        )

    def __call__(self, image):
        return self.transforms(image)


class EvalCropPreset:
    """The eval preset's geometry alone, for jobs that normalize whole batches (the features job):
    PIL image -> the resized, centre-cropped image as a uint8 ``(H, W, 3)`` tensor.

    ``normalize_batch`` of a stack of these equals ClassificationPresetEval bit for bit (the same
    resampling, then the same float32 operations in the same order: /255, -mean, /std), while the
    worker that decodes ships a quarter of the bytes and does no float work per image.
    """

    def __init__(self, *, crop_size: int, resize_size: int | None = None) -> None:
        self.crop_size = crop_size
        self.decode_size = resize_size or resize_size_for(crop_size)

    def __call__(self, image) -> torch.Tensor:
        from torchvision.transforms import functional

        image = functional.center_crop(functional.resize(image, self.decode_size), self.crop_size)
        return torch.from_numpy(np.array(image, dtype=np.uint8, copy=True))


def normalize_batch(
    images: torch.Tensor,
    *,
    mean: tuple[float, ...] = IMAGENET_MEAN,
    std: tuple[float, ...] = IMAGENET_STD,
) -> torch.Tensor:
    """uint8 ``(N, H, W, 3)`` -> float32 ``(N, 3, H, W)`` normalized as ToTensor + Normalize do.

    The result is channels_last in memory (a view of the NHWC batch, converted in place of a copy):
    the layout backbone_speed runs the convolutions in."""
    batch = images.permute(0, 3, 1, 2).to(torch.float32).div_(255)  # ToTensor: x / 255
    mean_t, std_t = (
        torch.as_tensor(values, dtype=batch.dtype, device=batch.device).view(1, -1, 1, 1)
        for values in (mean, std)
    )
    return batch.sub_(mean_t).div_(std_t)


def train_preset(image_size: int, augment: bool):
    """Training transform: augmented, or the eval preset (deterministic, so features can be cached)."""
    return (
        ClassificationPresetTrain(crop_size=image_size)
        if augment
        else ClassificationPresetEval(crop_size=image_size)
    )


def eval_preset(image_size: int) -> ClassificationPresetEval:
    return ClassificationPresetEval(crop_size=image_size)
