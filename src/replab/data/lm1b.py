"""lm1b, real source: a seeded sample of the One Billion Word benchmark, the unlabeled pool of sst / imdb.

`1-billion-word-language-modeling-benchmark-r13output.tar.gz` (1,792,209,805 bytes, sha256 pinned;
shared/reference/datasets.md §G) holds 99 training shards
`…/training-monolingual.tokenized.shuffled/news.en-000NN-of-00100`, one Moses-tokenised sentence per line,
plus the held-out shards (never used here).

download: fetch the tarball (a local mirror's is verified and read where it lies), then read it as a stream
(`tarfile` mode "r|gz": no unpacking, one shard in memory at a time, so memory is bounded by the largest shard,
about 40 MB) and keep each training sentence with probability `fraction` (1 % in the paper: "a random 1 % of the
One Billion Word benchmark"), drawn from a generator seeded by `seed` and the shard's name, so the sample does not
depend on member order. The sample (`lm1b_sample.txt`, about 300k sentences) is written atomically with a record
of its counts; the 1.7 GB tarball is deleted unless `keep_archive`. prepare: counts and mean length of the sample
(meta.json); the text sets' prepare stages draw their pools from the sample (replab.data.text.pool_docs). The record
(`lm1b_sample.json`) is a JSON object {"fraction", "seed", "shards", "sentences", "sampled", "archive_sha256",
"sha256"}; one of another shape, or a key missing, is a one-line DataError naming it (download resamples).
"""

from __future__ import annotations

import hashlib
import re
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from replab.data.text import file_lines, read_lines, read_text, utf8, verified_download
from replab.download import RemoteFile, check_mirror, fetch, local_root, verify
from replab.io import DataError, atomic_dir, atomic_path, read_json, sha256_file, write_json
from replab.params import MAX_COUNT, SEED_MAX, param

ARCHIVE = RemoteFile(
    "1-billion-word-language-modeling-benchmark-r13output.tar.gz",
    ("http://www.statmt.org/lm-benchmark/1-billion-word-language-modeling-benchmark-r13output.tar.gz",),
    "01ba60381110baf7f189dfd2b8374de371e8c9a340835793f190bdae9e90a34e",  # TFDS lm1b.txt, HF dataset_infos
    size=1_792_209_805,
)
SAMPLE = "lm1b_sample.txt"
RECORD = "lm1b_sample.json"
SHARD = re.compile(r"(?:^|/)training-monolingual\.tokenized\.shuffled/(news\.en-\d{5}-of-00100)$")
TRAIN_SHARDS = 99
STAGE = "download@lm1b"  # the DVC stage that writes the sample and its record
FIELDS = {"fraction": float, "seed": int, "shards": int, "sentences": int, "sampled": int, "sha256": str}


@dataclass(frozen=True)
class Lm1bConfig:
    mirror: str | None = param(None, nonempty=True, doc="directory, file:// or http(s):// URL holding the tarball")
    fraction: float = param(0.01, gt=0.0, le=1.0, doc="share of training sentences kept (paper: 1 %)")
    seed: int = param(0, ge=0, le=SEED_MAX, doc="seeds the sample (per shard)")
    keep_archive: bool = param(False, doc="keep the 1.7 GB tarball in data/raw/lm1b after sampling")
    expected_shards: int = param(TRAIN_SHARDS, ge=1, le=MAX_COUNT, doc="training shards the tarball must hold")


# what download() reads of the config (registry.download_params): the sample and where the tarball comes from
DOWNLOAD_PARAMS = ("mirror", "fraction", "seed", "keep_archive", "expected_shards")


def download(name: str, cfg: Lm1bConfig, raw_dir: Path, progress: bool = True) -> Path:
    """Leave `raw_dir/lm1b_sample.txt` (+ record); fetch and sample the tarball unless the record matches."""
    raw_dir = Path(raw_dir)
    target, record = raw_dir / SAMPLE, raw_dir / RECORD
    wanted = {"fraction": cfg.fraction, "seed": cfg.seed}
    if target.is_file() and record.is_file():
        try:
            rec = read_json(record, expect=dict)
        except DataError:  # a damaged record says nothing about the sample: draw it again (what rerunning asks)
            rec = {}
        if {k: rec.get(k) for k in wanted} == wanted and rec.get("sha256") == sha256_file(target):
            return target
    key = f"data.{name}.mirror"
    check_mirror(cfg.mirror, key, (ARCHIVE.name,))
    root = local_root(cfg.mirror) if cfg.mirror else None
    local = root / ARCHIVE.name if root is not None else None
    if local is not None and local.is_file() and not cfg.keep_archive:
        # a local mirror's tarball is verified and sampled where it lies: copying it would write 1.7 GB to delete
        verify(ARCHIVE, local)
        archive = local
    else:
        archive = fetch(ARCHIVE, raw_dir, cfg.mirror, progress=progress, key=key)
    stats = sample_tarball(archive, target, cfg.fraction, cfg.seed, cfg.expected_shards, progress=progress)
    write_json(record, {**wanted, **stats, "archive_sha256": ARCHIVE.sha256, "sha256": sha256_file(target)})
    if not cfg.keep_archive and archive != local:
        archive.unlink()
    return target


def _shard_rng(seed: int, shard: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{seed}:{shard}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def sample_tarball(archive: Path, target: Path, fraction: float, seed: int, expected_shards: int = TRAIN_SHARDS,
                   progress: bool = False) -> dict:
    """Stream the tarball; write the sampled training sentences to `target` atomically; return counts.

    DataError naming the archive if it is truncated / not a gzip tar, or holds fewer training shards than
    `expected_shards`."""
    from tqdm import tqdm

    seen, total, kept = [], 0, 0
    bar = tqdm(total=expected_shards, unit="shard", disable=not progress, mininterval=5)
    try:
        with atomic_path(target) as tmp, open(tmp, "w", encoding="utf-8") as out, \
                tarfile.open(archive, mode="r|gz") as tar:
            for member in tar:
                match = SHARD.search(member.name)
                if not member.isfile() or match is None:
                    continue
                shard = match.group(1)
                lines = file_lines(utf8(tar.extractfile(member).read(), f"{archive}:{member.name}"))
                keep = _shard_rng(seed, shard).random(len(lines)) < fraction
                chosen = np.asarray(lines, dtype=object)[keep]
                out.write("\n".join(chosen) + "\n" if len(chosen) else "")
                seen.append(shard)
                total, kept = total + len(lines), kept + len(chosen)
                bar.update(1)
            out.flush()
            if len(seen) < expected_shards:
                raise DataError(f"{archive}: holds {len(seen)} training shards, expected {expected_shards}")
    except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
        raise DataError(f"{archive}: truncated or not a gzip tar ({' '.join(str(err).split())})") from None
    finally:
        bar.close()
    return {"shards": len(seen), "sentences": total, "sampled": kept}


def read_sample(raw_root: Path, expect: dict, where: str) -> tuple[list[str], Path]:
    """(sentences, path) of the sample under `raw_root/lm1b` as a text set's unlabeled pool. `expect`
    ({"fraction", "seed"}: the text set's mirror of `data.lm1b`, so that DVC reruns its prepare stage when the
    sample changes) must match the sample's record, and the sample its recorded sha256, else a one-line DataError
    says to re-run lm1b."""
    path = raw_root / "lm1b" / SAMPLE
    if not path.is_file():
        raise DataError(f"{path}: missing; {where} = lm1b needs `dvc repro download@lm1b` first "
                        "(lm1b must be listed in `datasets`)")
    record, _ = verified_download(path, raw_root / "lm1b" / RECORD, STAGE, {k: FIELDS[k] for k in expect})
    got = {k: record[k] for k in expect}
    if got != expect:
        raise DataError(f"{path}: sampled with {got}, {where} expects {expect}; run `dvc repro download@lm1b`")
    return read_lines(path), path


def prepare(name: str, cfg: Lm1bConfig, raw_dir: Path, out_dir: Path, split_seed: int) -> dict:
    """meta.json for the sample (counts, mean length in Moses tokens); the pool itself stays in raw_dir."""
    raw_dir = Path(raw_dir)
    path = raw_dir / SAMPLE
    if not path.is_file():
        raise DataError(f"{path}: missing (run `dvc repro download@{name}` first)")
    rec, actual = verified_download(path, raw_dir / RECORD, STAGE, FIELDS)
    lengths = np.array([len(line.split()) for line in file_lines(read_text(path))])
    meta = {"dataset": name, "source": "real: One Billion Word benchmark, training shards", "sha256":
            {ARCHIVE.name: ARCHIVE.sha256, SAMPLE: actual}, "fraction": rec["fraction"], "seed": rec["seed"],
            "counts": {"shards": rec["shards"], "sentences": rec["sentences"], "sampled": rec["sampled"]},
            "mean_length": round(float(lengths.mean()), 2) if len(lengths) else 0.0,
            "paper": "N_ul = 50,000 (SST), 150,000 (IMDB) from a random 1 %"}
    with atomic_dir(out_dir) as tmp:
        write_json(tmp / "meta.json", meta)
    return meta
