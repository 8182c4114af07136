"""An image data set's processed layout (`replab.data.images`) on the device: flat float images and labels."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from replab.batches import images_to_tensor
from replab.data.images import load_image_splits
from replab.data.registry import PROCESSED_ROOT


@dataclass
class Images:
    """One processed image data set on the device: flat float images in [0, 1] and int64 labels per split."""

    x: dict[str, torch.Tensor]
    y: dict[str, torch.Tensor]
    source: str
    name: str


def load_images(dataset: str, device: torch.device) -> Images:
    """data/processed/<dataset>/ (train/val/test) moved to `device` once."""
    splits, meta = load_image_splits(PROCESSED_ROOT / dataset, dataset)
    return Images(x={k: images_to_tensor(x, device) for k, (x, _) in splits.items()},
                  y={k: torch.from_numpy(y).to(device) for k, (_, y) in splits.items()},
                  source=meta.get("source", "unknown"), name=dataset)
