"""aae_ssl: losses against hand-computed values, the class-balanced label subset, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conftest import compose
from replab.batches import Images
from replab.papers import aae_ssl
from replab.params import ParamError, Runtime, parse


def tiny_cfg(**overrides) -> aae_ssl.Config:
    section = dict(compose("profile=smoke")["aae_ssl"], **overrides)
    return parse(aae_ssl.Config, section, "aae_ssl")


def test_reconstruction_loss_mean_and_sum():
    x = torch.tensor([[0.0, 1.0], [0.5, 0.5]])
    x_rec = torch.tensor([[0.5, 1.0], [0.0, 1.0]])
    # squared errors: [[.25, 0], [.25, .25]] → per-pixel mean .1875; per-image sums [.25, .5] → mean .375
    assert aae_ssl.reconstruction_loss(x_rec, x, "mean").item() == pytest.approx(0.1875)
    assert aae_ssl.reconstruction_loss(x_rec, x, "sum").item() == pytest.approx(0.375)


def test_gan_losses_at_known_logits():
    zero = torch.zeros(4)
    # D outputs 0.5 everywhere: −log .5 − log(1 − .5) = 2 log 2; the generator's −log D = log 2
    assert aae_ssl.discriminator_loss(zero, zero).item() == pytest.approx(2 * math.log(2))
    assert aae_ssl.generator_loss(zero).item() == pytest.approx(math.log(2))
    confident = torch.full((4,), 20.0)
    assert aae_ssl.discriminator_loss(confident, -confident).item() == pytest.approx(0.0, abs=1e-6)


def test_batch_objective_weights_the_terms_as_eq3():
    cfg = tiny_cfg(lambda_rec=7.0, lambda_nll=1.0, lambda_reg=1.0)
    torch.manual_seed(0)
    x = torch.rand(5, 784)
    x_rec = torch.rand(5, 784)
    logits = torch.randn(5, 10)
    labels = torch.tensor([0, 1, 2, 3, 4])
    z = torch.randn(5, cfg.z_dim)
    disc = aae_ssl.Discriminator(8, cfg.z_dim, use_y=True)
    loss, terms = aae_ssl.batch_objective(cfg, 1.0, 1.0, x, logits, z, x_rec, labels, disc)
    rec = ((x - x_rec) ** 2).mean()
    nll = -torch.log_softmax(logits, 1)[torch.arange(5), labels].mean()
    d = torch.sigmoid(disc(torch.softmax(logits, 1), z))
    reg = -torch.log(d).mean()
    assert loss.item() == pytest.approx((7 * rec + nll + reg).item(), rel=1e-5)
    # unlabeled batch: (λ_NLL, λ_rec, λ_reg) = (0, 7, 1); AE: no discriminator term at all
    loss_u, terms_u = aae_ssl.batch_objective(cfg, 0.0, 1.0, x, logits, z, x_rec, None, disc)
    assert "nll" not in terms_u and loss_u.item() == pytest.approx((7 * rec + reg).item(), rel=1e-5)
    loss_ae, terms_ae = aae_ssl.batch_objective(cfg, 1.0, 0.0, x, logits, z, x_rec, labels, None)
    assert set(terms_ae) == {"rec", "nll"} and loss_ae.item() == pytest.approx((7 * rec + nll).item(), rel=1e-5)


def test_models_and_discriminator_inputs():
    enc, dec, disc = aae_ssl.build("aae_yz", 16, 6, batchnorm=True, dropout=0.5)
    y_logits, z = enc(torch.rand(3, 784))
    assert y_logits.shape == (3, 10) and z.shape == (3, 6)
    assert dec(torch.softmax(y_logits, 1), z).shape == (3, 784)
    assert disc(torch.softmax(y_logits, 1), z).shape == (3,)
    assert aae_ssl.build("ae", 16, 6, True, 0.5)[2] is None
    assert aae_ssl.build("aae_z", 16, 6, True, 0.5)[2].y_branch is None


def test_prior_is_one_hot_uniform_and_standard_normal():
    gen = torch.Generator().manual_seed(0)
    y, z = aae_ssl.prior_sample(20000, 3, "cpu", gen)
    assert torch.equal(y.sum(1), torch.ones(20000)) and set(y.unique().tolist()) == {0.0, 1.0}
    assert y.mean(0).sub(0.1).abs().max() < 0.01
    assert z.mean().abs() < 0.02 and (z.std() - 1).abs() < 0.02


def test_labeled_subset_is_class_balanced_and_seeded():
    labels = np.repeat(np.arange(10), 30)
    subset = aae_ssl.labeled_subset(labels, 100, seed=3)
    assert subset.sum() == 100 and np.all(np.bincount(labels[subset]) == 10)
    assert np.array_equal(subset, aae_ssl.labeled_subset(labels, 100, seed=3))
    assert not np.array_equal(subset, aae_ssl.labeled_subset(labels, 100, seed=4))
    with pytest.raises(ParamError, match=r"aae_ssl.n_labeled = 400: larger than the training set allows"):
        aae_ssl.labeled_subset(labels, 400, seed=0)


def test_correlation_summaries():
    corr = np.eye(12)
    corr[11, 0] = corr[0, 11] = 0.5  # one y–z pair (z has 2 units, y the last 10)
    assert aae_ssl.yz_block_mean_abs(corr) == pytest.approx(0.5 / 20)
    assert aae_ssl.offdiag_mean_abs(corr) == pytest.approx(1.0 / (144 - 12))


def synthetic_images(n=300) -> Images:
    gen = torch.Generator().manual_seed(1)
    y = torch.arange(n) % 10
    x = (torch.rand(n, 784, generator=gen) * 0.2 + (torch.arange(784) % 10 == y[:, None]).float() * 0.8)
    return Images(x={s: x for s in ("train", "val", "test")}, y={s: y for s in ("train", "val", "test")},
                          source="synthetic", name="synthetic")


def test_same_seed_same_result_and_training_learns():
    cfg = tiny_cfg(iterations=30, eval_every=10)
    runtime = Runtime(progress=False)
    data = synthetic_images()
    results = []
    for _ in range(2):
        torch.manual_seed(0)
        encoder, _, best, _ = aae_ssl.fit(cfg, "aae_yz", cfg.z_dim, 100, 30, 0, data, torch.device("cpu"), runtime)
        results.append((best["val_error"], [p.detach().clone() for p in encoder.parameters()]))
    assert results[0][0] == results[1][0]
    assert all(torch.equal(a, b) for a, b in zip(results[0][1], results[1][1]))
    assert results[0][0] < 90.0  # better than chance on an easy synthetic task


def test_style_grid_matches_the_seed_grid():
    _, dec, _ = aae_ssl.build("aae_yz", 8, 2, False, 0.0)
    grid = aae_ssl.style_grid(dec, 2, digit=1, grid_range=30.0, step=6.0, device=torch.device("cpu"))
    assert grid.shape == (11, 11, 28, 28)  # −30 … 30 step 6
