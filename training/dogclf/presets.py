"""The one transform preset module, shared by training and inference (torchvision references style).

Eval (and non-augmented training, which makes backbone features cacheable): resize the short side
to image_size * 256/224, centre-crop image_size, normalize with ImageNet statistics.
Train with augmentation: random resized crop + horizontal flip, then the same normalization.
torchvision is imported when a preset is built, not with this module: a trial from a features channel
(head_trial.py) needs resize_size_for only, and torchvision costs seconds of CPU to import.
"""

from __future__ import annotations

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


def train_preset(image_size: int, augment: bool):
    """Training transform: augmented, or the eval preset (deterministic, so features can be cached)."""
    return (
        ClassificationPresetTrain(crop_size=image_size)
        if augment
        else ClassificationPresetEval(crop_size=image_size)
    )


def eval_preset(image_size: int) -> ClassificationPresetEval:
    return ClassificationPresetEval(crop_size=image_size)
