"""Plain PyTorch peer loops for `replab bench`: each paper's training step as a researcher would write it.

Same networks (the paper's model.py builds their layers and initial weights), same losses and the same batch
sizes as the paper's loop, but the textbook way: PyTorch's own functions and modules where replab has faster
versions of them (`textbook`: `nn.Linear` on PyTorch's BLAS for replab.functional's oneDNN `Linear`, `nn.Dropout`
for aae_ssl's; PyTorch's losses and tanh for replab.functional's; attention_vat's BiLSTM over padded sentences as
a bidirectional `nn.LSTM` on a `PackedSequence`, as the attention papers' code runs it; PyTorch's default
NCHW layout for the convolutional models, which replab moves to channels-last on the CPU), a
`DataLoader(TensorDataset(...), shuffle=True)` over CPU tensors with the copy to the device in the loop,
`torch.optim.<Opt>(params, lr=...)` with PyTorch's defaults, `zero_grad()`, `backward()`, `step()`.
No logging, no `.item()` per step: the peer is the fastest naive loop, not a straw man.

Each peer is a generator: `peer(cfg, case, device)` yields once after every training step, forever; bench
times a number of those steps. `case` is the paper's `replab.bench.BenchCase` (its synthetic data and sizes).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def loader(*tensors: torch.Tensor, batch_size: int, seed: int = 0) -> Iterator[list[torch.Tensor]]:
    """Batches epoch after epoch (full batches only) from a shuffled DataLoader over CPU copies of `tensors`."""
    data = TensorDataset(*(t.cpu() for t in tensors))
    batches = DataLoader(data, batch_size=min(batch_size, len(data)), shuffle=True, drop_last=True,
                         generator=torch.Generator().manual_seed(seed))
    return itertools.chain.from_iterable(itertools.repeat(batches))


def aae_ssl(cfg, case, device) -> Iterator[None]:
    """AAE(y, z): D step on prior samples vs encoder outputs, then the Eq. 3 step on a labeled + unlabeled batch."""
    from replab.papers.aae_ssl.model import batch_objective, build, discriminator_loss, prior_sample

    model = "aae_yz" if "aae_yz" in cfg.models else cfg.models[-1]
    n_labeled = min(cfg.n_labeled)
    encoder, decoder, disc = (textbook(m.to(device)) if m is not None else None
                              for m in build(model, cfg.hidden, cfg.z_dim, cfg.batchnorm, cfg.dropout))
    lambda_reg = 0.0 if model == "ae" else cfg.lambda_reg
    params = [*encoder.parameters(), *decoder.parameters()]
    opt_ae = torch.optim.Adam(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2)) if disc else None
    labeled = loader(case.x[:n_labeled], case.y[:n_labeled], batch_size=cfg.batch_labeled)
    unlabeled = loader(case.x[n_labeled:], batch_size=cfg.batch_unlabeled, seed=1)
    encoder.train(), decoder.train()
    for (xl, yl), (xu,) in zip(labeled, unlabeled):
        xl, yl, xu = xl.to(device), yl.to(device), xu.to(device)
        x = torch.cat([xl, xu])
        y_logits, z = encoder(x)
        y_soft = F.softmax(y_logits, 1)
        if disc is not None:
            y_prior, z_prior = prior_sample(len(x), cfg.z_dim, device)
            d_loss = discriminator_loss(disc(y_prior, z_prior), disc(y_soft.detach(), z.detach()))
            opt_d.zero_grad()
            d_loss.backward()
            nn.utils.clip_grad_norm_(disc.parameters(), cfg.grad_clip)
            opt_d.step()
        x_rec = decoder(y_soft, z)
        n = len(xl)
        d_l, d_u = ((disc(F.softmax(y_logits[:n], 1), z[:n]), disc(F.softmax(y_logits[n:], 1), z[n:]))
                    if disc is not None else (None, None))
        loss_l, _ = batch_objective(cfg, cfg.lambda_nll, lambda_reg, xl, y_logits[:n], x_rec[:n], yl, d_l)
        loss_u, _ = batch_objective(cfg, 0.0, lambda_reg, xu, y_logits[n:], x_rec[n:], None, d_u)
        opt_ae.zero_grad()
        (loss_l + loss_u).backward()
        nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt_ae.step()
        yield


def textbook(module: nn.Module) -> nn.Module:
    """`module` with replab's faster layers replaced, in place, by PyTorch's own of the same parameters:
    `replab.functional.Linear` (oneDNN's matmul) by `nn.Linear` (PyTorch's BLAS), aae_ssl's `Dropout` (mask from
    `torch.rand`) by `nn.Dropout` (`bernoulli_`). Returns `module`."""
    from replab.functional import Linear
    from replab.papers.aae_ssl.model import Dropout

    for name, child in module.named_children():
        if isinstance(child, Linear):
            plain = nn.Linear(child.in_features, child.out_features, bias=child.bias is not None, device="meta")
            plain.weight, plain.bias = child.weight, child.bias  # the same Parameters: shared, not copied
            setattr(module, name, plain)
        elif isinstance(child, Dropout):
            setattr(module, name, nn.Dropout(child.p).train(child.training))
        else:
            textbook(child)
    return module


def split_vae_forward(model, x: torch.Tensor, noise: torch.Generator):
    """SplitVAE's encode → sample → decode written with torch.tanh on the model's layers (replab's
    SplitVAE.encode/decode use replab.functional.tanh): (pixel logits, (μ_A, logσ²_A, μ_B, logσ²_B), z_A)."""
    from replab.papers.split_vae.model import sample

    mu_a, lv_a, mu_b, lv_b = model.heads(torch.tanh(model.enc(x))).chunk(4, dim=1)
    z_a, z_b = sample(mu_a, lv_a, noise), sample(mu_b, lv_b, noise)
    logits = model.dec_out(torch.tanh(model.dec_a(z_a)) + torch.tanh(model.dec_b(z_b)))
    return logits, (mu_a, lv_a, mu_b, lv_b), z_a


def split_vae(cfg, case, device) -> Iterator[None]:
    """Experiment II's SplitVAE: one-sample objective rec + C1·(KL_A + KL_B) + C2·CE, Adam."""
    from replab.papers.split_vae.model import SplitVAE, gaussian_kl

    model = textbook(SplitVAE(cfg.hidden, cfg.exp2.latent_dim).to(device))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    noise = torch.Generator(device=device).manual_seed(0)
    model.train()
    for xb, yb in loader(case.x, case.y, batch_size=cfg.batch_size):
        xb, yb = xb.to(device), yb.to(device)
        logits, (mu_a, lv_a, mu_b, lv_b), z_a = split_vae_forward(model, xb, noise)
        rec = F.binary_cross_entropy_with_logits(logits, xb, reduction="none").sum(1).mean()
        kl = gaussian_kl(mu_a, lv_a).mean() + gaussian_kl(mu_b, lv_b).mean()
        loss = rec + cfg.c1 * kl + cfg.c2 * F.cross_entropy(model.classifier(z_a), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        yield


def censor(cfg, case, device) -> Iterator[None]:
    """SCT: per step, z of every window under the fixed encoder, one RMSprop step of D_sim on (z_i, z_j) pairs
    (Eq. 2), then one step of E and M on Eq. 4. Pairs: two shuffled loaders, g = [same user]."""
    from replab.papers.censor.model import Encoder, build_adversary, sct_encoder_loss, similarity_loss

    x, y = case.x.reshape(-1, 1, 6, 30), case.y  # bench's synthetic windows: 6 sensor rows × 30 samples
    s = torch.randint(0, 10, (len(x),), generator=torch.Generator().manual_seed(0)).to(device)  # 10 users
    encoder = textbook(Encoder(cfg.encoder, x.shape[2], x.shape[3]).to(device))
    classifier = nn.Linear(cfg.encoder.fc, int(y.max()) + 1).to(device)
    adversary = textbook(build_adversary("sct", cfg, int(s.max()) + 1).to(device))
    lr = cfg.adversarial.lr
    opt_adv = torch.optim.RMSprop(adversary.parameters(), lr=lr)
    opt_em = torch.optim.RMSprop([*encoder.parameters(), *classifier.parameters()], lr=lr)
    batch = cfg.adversarial.batch_size
    first = loader(x, y, s, batch_size=batch)
    second = loader(x, y, s, batch_size=batch, seed=1)
    x_all = x.to(device)
    for (x1, y1, s1), (x2, y2, s2) in zip(first, second):
        x1, y1, s1, x2, y2, s2 = (t.to(device) for t in (x1, y1, s1, x2, y2, s2))
        g = (s1 == s2).float()
        encoder.eval()
        with torch.no_grad():
            z_all = torch.cat([encoder(x_all[i:i + 2048]) for i in range(0, len(x_all), 2048)])
        i = torch.randint(0, len(z_all), (2, batch), device=device)
        adversary.train()
        loss = similarity_loss(adversary(torch.cat([z_all[i[0]], z_all[i[1]]], 1)).squeeze(1),
                               (s[i[0]] == s[i[1]]).float())
        opt_adv.zero_grad()
        loss.backward()
        opt_adv.step()
        adversary.eval()
        z1, z2 = encoder(x1), encoder(x2)
        objective = sct_encoder_loss(classifier(z1), y1, classifier(z2), y2,
                                     adversary(torch.cat([z1, z2], 1)).squeeze(1), g, 1.0)
        opt_em.zero_grad()
        objective.total.backward()
        opt_em.step()
        yield


def autoencoder(cfg, case, device) -> Iterator[None]:
    """The swept model with the largest step (the denoising conv model when swept): Keras-style Adam on BCE."""
    from replab.papers.autoencoder.model import build

    name = "denoising" if "denoising" in cfg.models else cfg.models[-1]
    model = textbook(build(name).to(device))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps)
    model.train()
    for (xb,) in loader(case.x, batch_size=case.batch_size):
        xb = xb.to(device)
        loss = F.binary_cross_entropy_with_logits(model(xb), xb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        yield


class PackedBiLSTMClassifier(nn.Module):
    """attention_vat's classifier with its BiLSTM written as the attention papers' code writes it (Jain & Wallace's
    EncoderRNN): `pack_padded_sequence` → one bidirectional `nn.LSTM` → `pad_packed_sequence`. It takes the
    embedding, attention and output layers of `model` (an AttentionClassifier) and copies its two LSTMs' weights, so
    it computes the same function (`encode` matches AttentionClassifier.encode to float rounding)."""

    def __init__(self, model):
        super().__init__()
        forward, backward = model.lstm_forward, model.lstm_backward
        self.embedding, self.dropout = model.embedding, model.dropout
        self.lstm = nn.LSTM(forward.input_size, forward.hidden_size, batch_first=True, bidirectional=True)
        with torch.no_grad():
            for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
                getattr(self.lstm, name).copy_(getattr(forward, name))
                getattr(self.lstm, f"{name}_reverse").copy_(getattr(backward, name))
        self.attention_w, self.attention_c, self.decoder = model.attention_w, model.attention_c, model.decoder
        self.attend = model.attend  # softmax, pooling and output layer: plain PyTorch already

    def encode(self, tokens: torch.Tensor, lengths: torch.Tensor):
        from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

        from replab.papers.attention_vat.model import Encoded, real_mask

        length = tokens.shape[1]
        mask = real_mask(lengths, length)
        embedded = self.embedding(tokens)
        packed = pack_padded_sequence(self.dropout(embedded), lengths.cpu(), batch_first=True, enforce_sorted=False)
        h = pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=length)[0]  # 0 on padding
        scores = self.attention_c(torch.tanh(self.attention_w(h))).squeeze(-1)
        return Encoded(embedded, h, scores.masked_fill(~mask, 0.0), mask)


def attention_vat(cfg, case, device) -> Iterator[None]:
    """Semi-supervised Attention VAT (Eq. 10): a labeled batch and an unlabeled pool batch per step, Adam."""
    from replab.loaders.text import TextData
    from replab.papers.attention_vat.model import build_model, kl_binary, nll, random_direction, vat_perturbation

    def loss_fn(t, n, yl):  # Eq. 10 with Attention VAT (Eq. 1-4), written from the model's own pieces
        enc = model.encode(t, n)
        logit = model.attend(enc.h, enc.scores, enc.mask)[0]
        h, scores, reference = enc.h.detach(), enc.scores.detach(), logit.detach()
        r = vat_perturbation(lambda r: kl_binary(reference, model.attend(h, scores, enc.mask, r)[0]),
                             random_direction(enc.scores, enc.mask, noise), enc.mask, cfg.eps_for("attention_vat"),
                             cfg.xi, cfg.power_iterations, None, cfg.alpha_norm)
        adv = kl_binary(reference, model.attend(enc.h, enc.scores, enc.mask, r)[0])
        return nll(logit[:len(yl)], yl) + cfg.lam * adv

    tokens, y = case.x, case.y
    lengths = (tokens > 0).sum(1)  # bench's synthetic sentences: ids ≥ 4, 0-padded on the right
    data = TextData({"train": tokens}, {"train": lengths}, {"train": y}, int(tokens.max()) + 1,
                    {"pad": 0, "unk": 1}, None, "synthetic", "bench")
    model = PackedBiLSTMClassifier(textbook(build_model(cfg, data, device))).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, amsgrad=cfg.amsgrad, weight_decay=cfg.weight_decay)
    noise = torch.Generator(device=device).manual_seed(0)
    labeled = loader(tokens, lengths, y, batch_size=cfg.batch_size)
    unlabeled = loader(tokens, lengths, batch_size=cfg.batch_unlabeled, seed=1)
    model.train()
    for (tl, nl, yl), (tu, nu) in zip(labeled, unlabeled):
        t, n = torch.cat([tl, tu]).to(device), torch.cat([nl, nu]).to(device)
        t = t[:, :int(n.max())]  # the batch's longest sentence
        loss = loss_fn(t, n, yl.to(device))
        opt.zero_grad()
        loss.backward()
        opt.step()
        yield


PEERS = {"aae_ssl": aae_ssl, "split_vae": split_vae, "censor": censor, "autoencoder": autoencoder,
         "attention_vat": attention_vat}
