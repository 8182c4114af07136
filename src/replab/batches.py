"""In-memory datasets on the device and shuffled index batches.

The data sets here fit in device memory, so a DataLoader with workers only adds copies and process start-up:
each split is moved to the device once, and a batch is an index slice of a seeded `randperm`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch


def images_to_tensor(x: np.ndarray, device: torch.device, flat: bool = True) -> torch.Tensor:
    """uint8 images (N, H, W) → float32 in [0, 1] on `device`, (N, H·W) or (N, 1, H, W)."""
    t = torch.from_numpy(np.ascontiguousarray(x)).to(device)
    t = t.float().div_(255.0)
    return t.reshape(len(x), -1) if flat else t.unsqueeze(1)


@dataclass
class Images:
    """One processed image data set on the device: flat float images in [0, 1] and int64 labels per split."""

    x: dict[str, torch.Tensor]
    y: dict[str, torch.Tensor]
    source: str
    name: str


def load_images(dataset: str, device: torch.device) -> Images:
    """data/processed/<dataset>/ (train/val/test) moved to `device` once."""
    from replab.data.images import load_image_splits
    from replab.data.registry import PROCESSED_ROOT

    splits, meta = load_image_splits(PROCESSED_ROOT / dataset)
    return Images(x={k: images_to_tensor(x, device) for k, (x, _) in splits.items()},
                  y={k: torch.from_numpy(y).to(device) for k, (_, y) in splits.items()},
                  source=meta.get("source", "unknown"), name=dataset)


def index_batches(n: int, batch_size: int, generator: torch.Generator, device: torch.device,
                  drop_last: bool = False) -> Iterator[torch.Tensor]:
    """One epoch of shuffled index batches (indices live on `device`)."""
    # drawn where the generator lives: a device generator avoids a host→device copy (and sync) per epoch
    perm = torch.randperm(n, generator=generator, device=generator.device).to(device)
    stop = n - n % batch_size if drop_last and n >= batch_size else n
    for start in range(0, stop, batch_size):
        yield perm[start:start + batch_size]


class EndlessBatches:
    """Index batches drawn epoch after epoch, for pairing a small labeled set with a large unlabeled one."""

    def __init__(self, n: int, batch_size: int, generator: torch.Generator, device: torch.device):
        if n <= 0:
            raise ValueError("EndlessBatches needs at least one example")
        self.n, self.batch_size, self.generator, self.device = n, min(batch_size, n), generator, device
        self._it: Iterator[torch.Tensor] = iter(())

    def __iter__(self) -> EndlessBatches:
        return self

    def __next__(self) -> torch.Tensor:
        batch = next(self._it, None)
        if batch is None:
            self._it = index_batches(self.n, self.batch_size, self.generator, self.device, drop_last=True)
            batch = next(self._it)
        return batch


@torch.no_grad()
def map_batches(fn, x: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
    """Apply `fn` to `x` in chunks (evaluation over a whole split without running out of memory)."""
    return torch.cat([fn(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
