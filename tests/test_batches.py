"""replab.batches: index batches and the rows they select."""

from __future__ import annotations

import pytest
import torch

from replab.batches import rows


@pytest.mark.parametrize("shape, dtype", [((50, 784), torch.float32), ((50,), torch.int64),
                                          ((50, 6, 1, 32), torch.float32), ((50, 7), torch.uint8)])
def test_rows_are_indexings_rows_in_values_dtype_and_layout(shape, dtype):
    g = torch.Generator().manual_seed(0)
    t = (torch.rand(shape, generator=g) * 100).to(dtype)
    idx = torch.randperm(50, generator=g)[:17]
    expected = t[idx]
    got = rows(t, idx)
    assert torch.equal(got, expected) and got.dtype == dtype and got.stride() == expected.stride()
    got[0] = 0  # a copy: the data set stays as it was
    assert torch.equal(t[idx[0]], expected[0])


def test_rows_of_a_channels_last_batch_keep_its_layout():
    t = torch.rand(50, 6, 1, 32).contiguous(memory_format=torch.channels_last)
    idx = torch.tensor([3, 1, 4, 1, 5])
    got = rows(t, idx)
    assert torch.equal(got, t[idx]) and got.is_contiguous(memory_format=torch.channels_last)
