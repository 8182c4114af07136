"""Shuffled index batches over data sets held whole on the device.

The data sets here fit in device memory, so a DataLoader with workers only adds copies and process start-up:
each split is moved to the device once (`replab.loaders.images.load_images`, `replab.loaders.text.load_text`, a
paper's own loader), and a batch is an index slice of a seeded `randperm`. Nothing here reads a data layout, so a change
to one data set's files reruns only the stages that read it.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch


def images_to_tensor(x: np.ndarray, device: torch.device, flat: bool = True) -> torch.Tensor:
    """uint8 images (N, H, W) → float32 in [0, 1] on `device`, (N, H·W) or (N, 1, H, W)."""
    t = torch.from_numpy(np.ascontiguousarray(x)).to(device)
    t = t.float().div_(255.0)
    return t.reshape(len(x), -1) if flat else t.unsqueeze(1)


def index_batches(n: int, batch_size: int, generator: torch.Generator, device: torch.device,
                  drop_last: bool = False) -> Iterator[torch.Tensor]:
    """One epoch of shuffled index batches (indices live on `device`)."""
    # drawn where the generator lives: a device generator avoids a host→device copy (and sync) per epoch
    perm = torch.randperm(n, generator=generator, device=generator.device).to(device)
    stop = n - n % batch_size if drop_last and n >= batch_size else n
    for start in range(0, stop, batch_size):
        yield perm[start:start + batch_size]


def rows(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """`t[idx]` for a 1-D integer index batch `idx` (non-negative, on t's device): the rows as a new tensor. For a
    contiguous `t` by `index_select`, which copies whole rows: on the CPU 6× faster than indexing's per-element
    gather (256 rows of 784 floats, 2 threads: 19 against 122 µs); another layout (a channels-last batch) keeps
    indexing's, which follows it."""
    return t.index_select(0, idx) if t.is_contiguous() else t[idx]


class EndlessBatches:
    """Index batches drawn epoch after epoch (full batches only), for pairing a small labeled set with a large
    unlabeled one. A `batch_size` above `n` draws all `n` each step (e.g. a Fig. 2 point whose N_ul is below
    the unlabeled batch: the paper's batch cannot be drawn without repeats). `state_dict()` / `load_state_dict()`
    hold the current epoch's permutation and position, so a resumed run draws the same batches (the generator's
    state is saved by its owner). With `track_seen`, `n_seen` counts the distinct examples drawn so far: fewer
    than `n` when the steps run out before an epoch of the pool does (a semi-supervised run whose N_ul exceeds
    what its steps draw)."""

    def __init__(self, n: int, batch_size: int, generator: torch.Generator, device: torch.device,
                 track_seen: bool = False):
        if n <= 0:
            raise ValueError("EndlessBatches needs at least one example")
        self.n, self.batch_size, self.generator, self.device = n, min(batch_size, n), generator, device
        self.stop = n - n % self.batch_size  # drop the last partial batch of every epoch
        self.perm: torch.Tensor | None = None
        self.pos = 0
        self.seen = torch.zeros(n, dtype=torch.bool, device=device) if track_seen else None

    @property
    def n_seen(self) -> int | None:
        """Distinct examples drawn so far (None without `track_seen`)."""
        return None if self.seen is None else int(self.seen.sum())

    def __iter__(self) -> EndlessBatches:
        return self

    def __next__(self) -> torch.Tensor:
        if self.perm is None or self.pos >= self.stop:
            # drawn where the generator lives, as index_batches does: the same stream of batches
            self.perm = torch.randperm(self.n, generator=self.generator, device=self.generator.device).to(self.device)
            self.pos = 0
        batch = self.perm[self.pos:self.pos + self.batch_size]
        self.pos += self.batch_size
        if self.seen is not None:
            self.seen[batch] = True
        return batch

    def state_dict(self) -> dict:
        return {"perm": self.perm, "pos": self.pos, **({"seen": self.seen} if self.seen is not None else {})}

    def load_state_dict(self, state: dict) -> None:
        perm = state["perm"]
        self.perm, self.pos = (None if perm is None else perm.to(self.device)), int(state["pos"])
        if self.seen is not None:
            self.seen = state["seen"].to(self.device)


@torch.no_grad()
def map_batches(fn, x: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
    """Apply `fn` to `x` in chunks (evaluation over a whole split without running out of memory)."""
    return torch.cat([fn(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def take_batch(tokens: torch.Tensor, lengths: torch.Tensor, idx: torch.Tensor, *more) -> tuple:
    """Rows `idx` of one or more (tokens, lengths) pools, stacked and cut to the batch's longest sequence
    (padding columns beyond it cost RNN steps and change nothing). `more` = further (tokens, lengths, idx)."""
    parts = [(rows(tokens, idx), rows(lengths, idx))]
    for t, n, i in zip(more[0::3], more[1::3], more[2::3], strict=True):
        parts.append((rows(t, i), rows(n, i)))
    length = int(torch.stack([n.max() for _, n in parts if len(n)]).max())  # one read (a GPU sync) for all parts
    toks = torch.cat([torch.nn.functional.pad(t[:, :length], (0, max(0, length - t.shape[1]))) for t, _ in parts])
    return toks, torch.cat([n for _, n in parts])
