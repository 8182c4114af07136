"""Resume after a kill (replab.checkpoint): SIGKILL a training stage mid-run, rerun `dvc repro`, and get the
weights, training record and DVCLive curves of an uninterrupted run; a changed param discards the checkpoint; a
diverging loss stops with one line. The kill tests run the smoke profile in a temporary clone (slow)."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import copy_repo, sh
from replab import runtime as rt
from replab.batches import EndlessBatches
from replab.checkpoint import Checkpoints, rng_state, set_rng_state
from replab.papers import Variant
from replab.params import ParamError, Runtime

VOLATILE = {"seconds", "samples_per_s"}
# (training stage, paper, key): every kind of training loop — iterations (aae_ssl), epochs (autoencoder,
# split_vae, censor pretraining), per-class models (anomaly), repetitions (censor AFL/SCT)
CASES = [
    ("train_aae_ssl@ae-100-0", "aae_ssl", "ae-100-0"),
    ("train_autoencoder@simple-0", "autoencoder", "simple-0"),
    ("train_autoencoder_anomaly", "autoencoder", "anomaly"),
    ("train_split_vae@exp1-0", "split_vae", "exp1-0"),
    ("train_censor_cnn@0", "censor", "cnn-0"),
    ("train_censor@sct-1.0-0", "censor", "sct-1.0-0"),
]
# enough checkpoints per stage that a kill after the first one lands mid-run
LONGER = ("runtime.checkpoint_every=0", "aae_ssl.iterations=60", "autoencoder.simple.epochs=4",
          "autoencoder.anomaly.epochs=3", "split_vae.exp1.epochs=4", "censor.pretrain.epochs=4",
          "censor.adversarial.repetitions=4")


def strip_volatile(record):
    if isinstance(record, dict):
        return {k: strip_volatile(v) for k, v in record.items() if k not in VOLATILE}
    return record


def curves(live_dir: Path) -> dict[str, list[list[str]]]:
    """DVCLive's TSV curves without the timestamp column: {file: rows of (step, value)}, of the variant's DVCLive
    folder and those inside it (anomaly's one per held-out class); never empty (a test of no curves cannot fail)."""
    out = {}
    for tsv in sorted(live_dir.rglob("plots/metrics/**/*.tsv")):
        rows = [line.split("\t") for line in tsv.read_text().splitlines()]
        keep = [i for i, name in enumerate(rows[0]) if name != "timestamp"]
        out[str(tsv.relative_to(live_dir))] = [[r[i] for i in keep] for r in rows]
    assert out, f"{live_dir}: no DVCLive curves"
    return out


@pytest.fixture(scope="module")
def repo(smoke_baseline, tmp_path_factory) -> Path:
    """A copy of the session's smoke baseline with params.yaml recomposed with LONGER and committed: its data
    stages stay up to date, the training stages of every case here are out of date."""
    root = copy_repo(smoke_baseline, tmp_path_factory.mktemp("resume") / "repo")
    sh(root, "replab", "compose", "profile=smoke", "runtime.progress=false", *LONGER)
    sh(root, "git", "commit", "-qm", "longer runs", "--", "params.yaml")
    return root


@pytest.mark.slow
@pytest.mark.parametrize("train, paper, key", CASES, ids=[c[0] for c in CASES])
def test_killed_stage_resumes_to_the_model_of_an_uninterrupted_run(repo, train, paper, key):
    """The resumed stage's outputs are the uninterrupted run's: the same weights bit for bit (so every metric
    evaluated from them is the same), the same training record but for its timings, and the same DVCLive
    curves, no step lost or repeated."""
    model_dir, ckpt = repo / "models" / paper / key, repo / "checkpoints" / paper / key / "checkpoint.pt"
    live = repo / "plots" / paper / "curves" / key
    sh(repo, "dvc", "repro", train)  # the uninterrupted run (and the stages it needs, e.g. censor's pretraining)
    reference = trained(model_dir), curves(live)
    assert not ckpt.parent.exists()  # a finished stage leaves no checkpoint, nor its folder

    kill_after_first_checkpoint(repo, train, ckpt)

    # forced, as a run of changed params would be: unforced, DVC restores the killed stage's earlier complete run
    # (same params, so nothing to resume) from its cache
    resumed = sh(repo, "dvc", "repro", "--force", "--single-item", train)
    assert "resuming from" in resumed.stdout + resumed.stderr
    assert (trained(model_dir), curves(live)) == reference
    assert not ckpt.exists()
    assert "up to date" in sh(repo, "dvc", "status", train).stdout


def trained(model_dir: Path) -> tuple[list, dict]:
    """A training stage's outputs, comparable with ==: model.pt flattened to (key path, dtype, shape, values as
    bytes) rows, and train.json without its timings (its model_sha256 included: the same bytes, so the same DVC
    hash)."""
    def rows(value, path=()):
        if isinstance(value, torch.Tensor):
            return [(path, str(value.dtype), tuple(value.shape), value.cpu().contiguous().numpy().tobytes())]
        if isinstance(value, dict):
            return [row for k in sorted(value, key=str) for row in rows(value[k], (*path, str(k)))]
        if isinstance(value, (list, tuple)):
            return [row for i, v in enumerate(value) for row in rows(v, (*path, i))]
        return [(path, value)]

    state = torch.load(model_dir / "model.pt", map_location="cpu", weights_only=True)
    record = strip_volatile(json.loads((model_dir / "train.json").read_text()))
    return rows(state), record


@contextlib.contextmanager
def changed_params(repo: Path, section: str, **values):
    """params.yaml of the clone with `section`'s values replaced, restored afterwards."""
    path = repo / "params.yaml"
    before = path.read_text()
    params = yaml.safe_load(before)
    params[section].update(values)
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        yield
    finally:
        path.write_text(before)


def kill_after_first_checkpoint(repo: Path, stage: str, ckpt: Path, cmd: list[str] | None = None) -> None:
    log = repo.parent / "killed.log"
    with log.open("w") as out:
        run = subprocess.Popen(cmd or ["dvc", "repro", "--force", "--single-item", stage], cwd=repo,
                               start_new_session=True, stdout=out, stderr=subprocess.STDOUT)
        while not ckpt.exists() and run.poll() is None:
            time.sleep(0.01)
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
        run.wait()
    assert ckpt.exists(), f"{stage} ended before its first checkpoint, nothing killed mid-run:\n{log.read_text()}"


@pytest.mark.slow
def test_the_same_dvc_exp_run_resumes_a_killed_stage(repo):
    """`dvc exp run` forces the workspace to dvc.lock's outputs before running: a checkpoint folder that was a
    `persist: true` output went back to its recorded empty state, so the rerun silently started over."""
    ckpt = repo / "checkpoints/aae_ssl/ae-100-0/checkpoint.pt"
    # `dvc exp run` recomposes params.yaml from conf/ (Hydra): the fixture's overrides, and one changed param (a
    # run DVC has no finished result of)
    overrides = [arg for o in ("profile=smoke", "runtime.progress=false", *LONGER, "aae_ssl.iterations=70")
                 for arg in ("-S", o)]
    run = ["dvc", "exp", "run", *overrides, "train_aae_ssl@ae-100-0"]
    kill_after_first_checkpoint(repo, "train_aae_ssl@ae-100-0", ckpt, run)
    rerun = sh(repo, *run)
    assert "resuming from checkpoints/aae_ssl/ae-100-0/checkpoint.pt" in rerun.stdout + rerun.stderr
    assert not ckpt.exists()


@pytest.mark.slow
def test_a_changed_param_discards_the_checkpoint(repo):
    ckpt = repo / "checkpoints/aae_ssl/ae-100-0/checkpoint.pt"
    kill_after_first_checkpoint(repo, "train_aae_ssl@ae-100-0", ckpt)
    with changed_params(repo, "aae_ssl", lr=0.0002):
        rerun = sh(repo, "dvc", "repro", "--single-item", "train_aae_ssl@ae-100-0")
    out = rerun.stdout + rerun.stderr
    assert "discarded" in out and "resuming from" not in out


@pytest.mark.slow
def test_diverging_run_stops_with_one_line_and_writes_no_model(repo):
    model_dir = repo / "models/aae_ssl/aae_yz-100-0"
    sh(repo, "dvc", "repro", "prepare@mnist5k")  # the data (up to date after the tests above)
    shutil.rmtree(model_dir, ignore_errors=True)  # the baseline's
    with changed_params(repo, "aae_ssl", lr=1e30):
        bad = sh(repo, "replab", "train", "aae_ssl", "aae_yz-100-0", "model=aae_yz", "n_labeled=100", "seed=0",
                 check=False)
    assert bad.returncode == 2
    last = bad.stderr.strip().splitlines()[-1]
    assert re.fullmatch(r"error: aae_ssl aae_yz-100-0: loss is (nan|inf|-inf) at iteration \d+ "
                        r"\(lower aae_ssl\.lr, \.lambda_nll, \.lambda_rec, \.lambda_reg\?\)", last), bad.stderr
    assert not model_dir.exists()


# ---------------------------------------------------------------------------------------------------------
# The machinery, in-process


def test_rng_state_round_trip_restores_every_generator():
    import random

    rt.setup(Runtime(progress=False, threads=1), 3)
    saved = rng_state()
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(saved)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first


def test_endless_batches_resume_mid_epoch():
    gen = torch.Generator().manual_seed(0)
    batches = EndlessBatches(10, 3, gen, torch.device("cpu"))
    for _ in range(4):  # into the second epoch (3 full batches per epoch)
        next(batches)
    state, gen_state = batches.state_dict(), gen.get_state()
    expected = [next(batches).tolist() for _ in range(5)]
    gen2 = torch.Generator().manual_seed(123)
    gen2.set_state(gen_state)
    again = EndlessBatches(10, 3, gen2, torch.device("cpu"))
    again.load_state_dict(state)
    assert [next(again).tolist() for _ in range(5)] == expected


def test_endless_batches_count_the_distinct_examples_drawn_across_epochs_and_a_resume():
    gen = torch.Generator().manual_seed(0)
    batches = EndlessBatches(10, 4, gen, torch.device("cpu"), track_seen=True)
    assert batches.n_seen == 0 and EndlessBatches(10, 4, gen, torch.device("cpu")).n_seen is None
    drawn = [next(batches).tolist() for _ in range(2)]
    assert batches.n_seen == 8  # an epoch is 2 full batches of 4: the 2 left over are not drawn yet
    state, gen_state = copy.deepcopy(batches.state_dict()), gen.get_state()  # (a checkpoint saves it at once)
    drawn += [next(batches).tolist() for _ in range(6)]  # 3 more epochs, each a fresh permutation
    assert batches.n_seen == len({i for batch in drawn for i in batch})
    again = EndlessBatches(10, 4, torch.Generator().manual_seed(1), torch.device("cpu"), track_seen=True)
    again.generator.set_state(gen_state)
    again.load_state_dict(state)
    assert again.n_seen == 8
    for _ in range(6):
        next(again)
    assert again.n_seen == batches.n_seen


def test_checkpoint_of_other_params_or_code_is_discarded(in_tmp):
    from replab.papers.aae_ssl import Config

    variant, runtime = Variant("aae_ssl", "ae-100-0", {"model": "ae"}), Runtime(checkpoint_every=0)
    logs = []
    first = Checkpoints(variant, Config(), runtime, log=logs.append)
    first.save("fit", {"iteration": 7}, where="iteration 7")
    same = Checkpoints(variant, Config(), runtime, log=logs.append)
    assert same.resume("fit") == {"iteration": 7} and "resuming from" in logs[-1]
    assert same.resume("other loop") is None
    changed = Checkpoints(variant, Config(lr=2e-4), runtime, log=logs.append)
    assert not changed.resuming and "discarded" in logs[-1] and not first.path.exists()


@pytest.mark.parametrize("sync_free", [False, True])  # the host read of the CPU, the device flag of a GPU
def test_diverging_loss_stops_with_one_line_naming_variant_and_iteration(in_tmp, sync_free):
    guard = rt.LossGuard("aae_ssl aae_yz-100-0", torch.device("cpu"), hint="lower aae_ssl.lr?", sync_free=sync_free)
    for step, value in enumerate([1.0, 2.0, float("nan"), float("inf")], 1):
        guard.update(step, torch.tensor(value, requires_grad=True) * 1)  # a loss of the graph, as loops pass it
        if step == 2:
            guard.check()  # finite so far
    with pytest.raises(ParamError) as err:
        guard.check()
    assert str(err.value) == "aae_ssl aae_yz-100-0: loss is nan at iteration 3 (lower aae_ssl.lr?)"
    several = rt.LossGuard("aae_ssl aae_yz-100-0", torch.device("cpu"), sync_free=sync_free)
    several.update(1, torch.tensor(1.0), torch.tensor(float("-inf")))  # the D and the AE loss of a step
    with pytest.raises(ParamError, match="loss is -inf at iteration 1$"):
        several.check()


def test_weights_a_step_of_finite_loss_made_non_finite_stop_the_run_naming_the_tensor():
    """The loss of the last step before an evaluation is finite, its update is not (attention_vat at lr = 1e38):
    the evaluation failed inside scikit-learn or logged NaN, and save_trained refused the model without a hint."""
    from replab.ensemble import Stacked

    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    stacked = Stacked([net, copy.deepcopy(net)])
    guard = rt.LossGuard("split_vae exp1-0", torch.device("cpu"), hint="lower split_vae.lr?",
                         watch={"model": net, "disc": None, "seeds": stacked})  # None: a network a model lacks
    guard.update(1, torch.tensor(1.0))
    guard.check()
    for weights, name in ((net[1].bias, "model.1.bias"), (stacked.params["0.weight"], "seeds.0.weight")):
        with torch.no_grad():
            weights.view(-1)[-1] = float("inf")
        guard.update(2, torch.tensor(0.5))
        with pytest.raises(ParamError) as err:
            guard.check()
        assert str(err.value) == (f"split_vae exp1-0: weight {name} is not finite after iteration 2 "
                                  "(lower split_vae.lr?)")
        with torch.no_grad():
            weights.view(-1)[-1] = 0.0
    guard.check()


# ---------------------------------------------------------------------------------------------------------
# fast: what a checkpoint's fingerprint covers


@pytest.mark.parametrize("paper", ["aae_ssl", "split_vae", "censor", "autoencoder", "attention_vat"])
def test_a_checkpoint_of_other_shared_code_or_kernels_is_not_resumed(paper, in_tmp, monkeypatch):
    """The fingerprint hashed the paper's model.py and train.py only: an edit of runtime.py's optimizer wrapper or of
    the batches, or a rerun under ATEN_CPU_CAPABILITY=avx2 on an AVX-512 machine (other kernels, other rounding),
    resumed a checkpoint of the other code or kernels and mixed two runs. It now covers the replab code `train`
    reaches and the machine facts."""
    import torch

    from replab.checkpoint import fingerprint
    from replab.code_closure import closure
    from replab.papers import paper_module

    reached = closure(f"replab.papers.{paper}.train", "train")
    assert {"replab.runtime:optimizer", "replab.runtime:LossGuard"} <= set(reached)
    cfg, runtime = paper_module(paper).Config(), Runtime()
    variant = Variant(paper, "k", {"seed": 0})
    before = fingerprint(variant, cfg, runtime)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "another SIMD level")
    assert fingerprint(variant, cfg, runtime) != before


def test_a_checkpoint_of_other_data_is_not_resumed(in_tmp):
    """The fingerprint covered params, runtime and code but not the data: a run killed with `-S
    data.writers.shear=0.3` resumed, rerun at the default shear, 274 of its 300 epochs trained on the other data."""
    from replab.checkpoint import fingerprint
    from replab.papers import aae_ssl

    cfg, runtime = aae_ssl.Config(dataset="mnist5k"), Runtime()
    variant = Variant("aae_ssl", "ae-100-0", {"model": "ae", "n_labeled": 100, "seed": 0})
    processed = in_tmp / "data/processed/mnist5k"
    processed.mkdir(parents=True)
    (processed / "train.npz").write_bytes(b"shear 0.4")
    before = fingerprint(variant, cfg, runtime)
    assert fingerprint(variant, cfg, runtime) == before  # deterministic
    (processed / "train.npz").write_bytes(b"shear 0.3")
    assert fingerprint(variant, cfg, runtime) != before
    (processed / "train.npz").write_bytes(b"shear 0.4")
    assert fingerprint(variant, cfg, runtime) == before
    (in_tmp / "data/processed/writers").mkdir()  # another data set changes nothing
    (in_tmp / "data/processed/writers/train.npz").write_bytes(b"x")
    assert fingerprint(variant, cfg, runtime) == before


def test_a_checkpoint_that_is_not_replabs_is_discarded_and_a_missing_key_is_one_line(in_tmp):
    from replab.io import DataError
    from replab.papers.aae_ssl import Config

    variant, runtime = Variant("aae_ssl", "ae-100-0", {"model": "ae"}), Runtime(checkpoint_every=0)
    logs = []
    first = Checkpoints(variant, Config(), runtime, log=logs.append)
    first.path.parent.mkdir(parents=True, exist_ok=True)
    torch.save([1, 2, 3], first.path)
    again = Checkpoints(variant, Config(), runtime, log=logs.append)
    assert not again.resuming and logs[-1].endswith("not a replab checkpoint, discarded; starting over")
    assert not first.path.exists()

    again.save("fit", {"iteration": 7}, where="iteration 7")
    saved = Checkpoints(variant, Config(), runtime, log=logs.append).resume("fit")
    assert saved["iteration"] == 7
    with pytest.raises(DataError) as err:
        saved["opt_ae"]
    assert str(err.value) == (f"{first.path}: checkpoint lacks 'opt_ae' (written by other code?); delete it to "
                              "start over")


def test_a_model_with_a_non_finite_weight_is_not_saved(in_tmp):
    from replab.io import NonFiniteError

    weights = {"encoder": {"w": torch.ones(2, 2), "steps": torch.tensor(3)}, "decoder": [torch.zeros(1)]}
    weights["encoder"]["w"][1, 0] = float("nan")
    with pytest.raises(NonFiniteError) as err:
        rt.save_trained(Path("models") / "m", weights, {"val_error": 1.0})
    assert str(err.value).startswith("models/m: model.pt encoder.w: 1 of 4 values are NaN or infinite")
    assert not (in_tmp / "models").exists() or not any((in_tmp / "models").rglob("*"))
    weights["encoder"]["w"][1, 0] = 0.0
    rt.save_trained(Path("models") / "m", weights, {"val_error": 1.0})
    assert (in_tmp / "models" / "m" / "model.pt").exists()


# ---------------------------------------------------------------------------------------------------------
# fast: an unusable checkpoint is discarded with one line, never a traceback


def _checkpoints(logs):
    from replab.papers.aae_ssl import Config

    variant, runtime = Variant("aae_ssl", "ae-100-0", {"model": "ae"}), Runtime(checkpoint_every=0)
    return Checkpoints(variant, Config(), runtime, log=logs.append)


def _tampered(logs, **changes):
    """Save a valid checkpoint, rewrite some of its entries, and load it again."""
    first = _checkpoints(logs)
    first.save("fit", {"iteration": 7, "encoder": {"w": torch.ones(2)}}, where="iteration 7")
    saved = torch.load(first.path, weights_only=True)
    saved.update(changes)
    torch.save(saved, first.path)
    return first.path, _checkpoints(logs)


def test_a_checkpoint_that_is_a_directory_is_discarded_with_one_line(in_tmp):
    logs = []
    path = _checkpoints(logs).path
    (path / "inside").mkdir(parents=True)
    again = _checkpoints(logs)
    assert not again.resuming and not path.exists()
    assert logs == [f"{path}: unusable checkpoint: not a file, discarded; starting over"]


@pytest.mark.parametrize("level", [0, 1, 2], ids=["variant", "paper", "checkpoints"])
def test_a_file_where_a_checkpoint_folder_goes_is_discarded_with_one_line(in_tmp, level):
    """A file at checkpoints/<paper>/<variant> (or above): training ran to the end, then discarding the checkpoint
    failed with a NotADirectoryError traceback (with checkpoint_every: 0, the first save, FileExistsError)."""
    logs = []
    folder = _checkpoints(logs).path.parents[level]
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.write_text("x")
    again = _checkpoints(logs)
    assert not again.resuming and logs == [f"{folder}: not a folder (where checkpoints go), discarded; starting over"]
    again.save("fit", {"iteration": 1}, where="iteration 1")
    assert again.path.is_file()
    again.finish()
    assert not again.path.exists()


@pytest.mark.parametrize("changes, why", [
    ({"state": [1, 2]}, "'state' is a list, not a dict"),
    ({"rng": {}}, "'rng' does not restore (KeyError"),
    ({"live": [1]}, "'live' is a list, not a dict"),
    ({"seconds": "abc"}, "'seconds' is 'abc', not a finite number >= 0"),
    ({"seconds": float("nan")}, "'seconds' is nan"),
    ({"state": {"encoder": {"w": torch.tensor([1.0, float("nan")])}}}, "state.encoder.w holds NaN or infinite"),
    ({"context": {"best": [torch.tensor(float("inf"))]}}, "context.best.0 holds NaN or infinite"),
    ({"live": {"../../../../tmp/x/escaped.txt": "x"}}, "is not a relative path inside the live dir"),
    ({"live": {"/tmp/escaped.txt": "x"}}, "is not a relative path inside the live dir"),
], ids=["state-list", "rng-empty", "live-list", "seconds-str", "seconds-nan", "nan-weight", "inf-context",
        "live-dotdot", "live-absolute"])
def test_a_checkpoint_with_bad_contents_is_discarded_with_one_line(in_tmp, changes, why):
    logs = []
    rng_before = torch.get_rng_state()
    path, again = _tampered(logs, **changes)
    assert not again.resuming and not path.exists() and again.resume("fit") is None
    assert len(logs) == 1 and logs[0].startswith(f"{path}: unusable checkpoint: ") and why in logs[0], logs
    assert logs[0].endswith(", discarded; starting over") and "\n" not in logs[0]
    assert torch.equal(torch.get_rng_state(), rng_before)  # checking the RNG state leaves the RNGs alone
    assert not (in_tmp.parent / "escaped.txt").exists() and not Path("/tmp/escaped.txt").exists()


def test_a_live_file_name_through_a_link_out_of_the_live_dir_is_refused(in_tmp):
    logs = []
    outside = in_tmp / "outside"
    outside.mkdir()
    live_dir = Path(_checkpoints(logs).live_dir)
    live_dir.mkdir(parents=True)
    (live_dir / "link").symlink_to(outside)
    path, again = _tampered(logs, live={"link/escaped.txt": "x"})
    assert not again.resuming and "leads outside the live dir" in logs[-1] and not (outside / "escaped.txt").exists()


def test_a_valid_checkpoint_still_resumes_with_its_live_files(in_tmp):
    logs = []
    path, again = _tampered(logs, live={"plots/metrics/loss.tsv": "step\tloss\n0\t1.0\n"}, seconds=3.5)
    assert again.resuming and again.resume("fit")["iteration"] == 7
    assert (Path(again.live_dir) / "plots/metrics/loss.tsv").read_text() == "step\tloss\n0\t1.0\n"


def test_a_checkpoint_with_non_finite_tensors_is_never_saved(in_tmp):
    from replab.io import NonFiniteError

    logs = []
    ckpt = _checkpoints(logs)
    with pytest.raises(NonFiniteError) as err:
        ckpt.save("fit", {"encoder": {"w": torch.tensor([0.0, float("nan")])}}, where="iteration 1080")
    assert str(err.value).startswith(f"{ckpt.path}: not saved, state.encoder.w holds NaN or infinite values")
    assert not ckpt.path.exists()
    ckpt.save("fit", {"encoder": {"w": torch.zeros(2)}, "best": {"val_error": float("inf")}})  # floats: bookkeeping
    assert ckpt.path.exists()


def test_a_saved_state_that_does_not_load_into_the_modules_is_discarded_with_one_line(in_tmp):
    """A tensor of another shape: load_state_dict's RuntimeError traceback; a generator state that is not one:
    set_state's. Both are one DataError line, and the checkpoint is gone so that the rerun starts over."""
    from replab.io import DataError

    logs = []
    first = _checkpoints(logs)
    first.save("fit", {"model": torch.nn.Linear(2, 3).state_dict(), "generator": torch.zeros(3, dtype=torch.uint8)})

    def fit(ckpt, module, restore_generator=False):
        with ckpt.open_live():
            saved = ckpt.resume("fit")
            module.load_state_dict(saved["model"])
            if restore_generator:
                torch.Generator().set_state(saved["generator"])
            ckpt.maybe_save("fit", lambda: {"model": module.state_dict()})

    for module, restore_generator, kind in ((torch.nn.Linear(2, 2), False, "RuntimeError: Error(s) in loading "),
                                            (torch.nn.Linear(2, 3), True, "RuntimeError: ")):
        ckpt = _checkpoints(logs)
        assert ckpt.resuming
        with pytest.raises(DataError) as err:
            fit(ckpt, module, restore_generator)
        message = str(err.value)
        assert message.startswith(f"{ckpt.path}: unusable checkpoint: its state does not load into the aae_ssl "
                                  f"ae-100-0 loop ({kind}") and "\n" not in message
        assert message.endswith("discarded; rerun to start over") and not ckpt.path.exists()
        first.save("fit", {"model": torch.nn.Linear(2, 3).state_dict(), "generator": torch.zeros(3, dtype=torch.uint8)})
    # an error once the loop runs (after its first maybe_save) is not the checkpoint's: raised as it is, file kept
    ckpt = _checkpoints(logs)
    with pytest.raises(RuntimeError, match="later"), ckpt.open_live():
        torch.nn.Linear(2, 3).load_state_dict(ckpt.resume("fit")["model"])
        ckpt.maybe_save("fit", lambda: {"model": torch.nn.Linear(2, 3).state_dict()})
        raise RuntimeError("later")
    assert ckpt.path.exists()
