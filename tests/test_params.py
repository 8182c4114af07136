"""Params: composition from conf/, profiles, and one-line validation errors naming the key."""

from __future__ import annotations

import math
import os

import pytest
import yaml

from conftest import REPO, compose
from replab.cli import main, parse_variant
from replab.papers import aae_ssl
from replab.params import BELOW_FLOAT64, BEYOND_FLOAT64, ParamError, load_section, parse


def test_committed_params_equal_composition_of_conf():
    committed = yaml.safe_load((REPO / "params.yaml").read_text())
    assert committed == compose(), "params.yaml drifted from conf/: run `replab compose`"


def test_paper_profile_uses_real_mnist_full_sweep_and_five_seeds():
    params = compose("profile=paper")
    assert params["meta"]["profile"] == "paper"
    assert params["datasets"] == ["mnist", "emnist_writers", "usc_had", "lm1b", "fasttext", "sst", "imdb",
                                  "eraser_movies"]
    assert params["attention_vat"]["dataset"] == "sst" and params["data"]["sst"]["unlabeled"] == "lm1b"
    # sst / imdb mirror data.lm1b's sample params, so a new sample reruns their prepare stages
    sample = compose("profile=paper", "data.lm1b.fraction=0.02")["data"]
    assert sample["sst"]["lm1b_fraction"] == sample["imdb"]["lm1b_fraction"] == 0.02
    assert params["aae_ssl"]["dataset"] == "mnist"
    assert params["split_vae"]["dataset"] == "emnist_writers"
    assert params["censor"]["dataset"] == "usc_had"
    assert params["censor"]["lambdas"] == [0.1, 0.2, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert params["censor"]["adversarial"]["repetitions"] == 30
    assert params["aae_ssl"]["n_labeled"] == [100, 600, 1000, 3000]
    assert params["aae_ssl"]["seeds"] == [0, 1, 2, 3, 4]
    assert params["aae_ssl"]["hidden"] == 1000 and params["aae_ssl"]["z_dim"] == 50


def test_images_override_switches_every_image_paper():
    params = compose("images=fashion_mnist", "data.fashion_mnist.mirror=/usr/share/datasets/fashion-mnist")
    assert params["datasets"] == ["fashion_mnist", "writers", "har", "rt_snippets"]
    assert params["aae_ssl"]["dataset"] == "fashion_mnist"
    assert params["data"]["fashion_mnist"]["mirror"] == "/usr/share/datasets/fashion-mnist"


@pytest.mark.parametrize("profile", ["quick", "paper", "smoke"])
def test_every_profile_validates(profile, in_tmp, capsys):
    (in_tmp / "params.yaml").write_text(yaml.safe_dump(compose(f"profile={profile}")))
    assert main(["check"]) == 0, capsys.readouterr().err
    assert capsys.readouterr().out == "params.yaml: ok\n"


@pytest.mark.parametrize(("key", "value", "message"), [
    ("lambda_rec", -1, "aae_ssl.lambda_rec = -1.0: must be >= 0"),
    ("models", ["ae", "vae"], "aae_ssl.models[1] = 'vae': not allowed (allowed: ae, aae_z, aae_yz)"),
    ("dropout", 1.5, "aae_ssl.dropout = 1.5: must be < 1.0"),
    ("hidden", "big", "aae_ssl.hidden = 'big': must be an integer"),
    ("n_labeled", [105], "aae_ssl.n_labeled = 105: must be a multiple of 10"),
    ("eval_every", 10**6, "aae_ssl.eval_every = 1000000: more than iterations = "),  # no model selection at all
    ("style", {**compose()["aae_ssl"]["style"], "n_labeled": 999}, "aae_ssl.style.n_labeled = 999: must be a "
                                                                   "multiple of 10"),  # the style model's own key
    ("lambda_typo", 1, "aae_ssl.lambda_typo: unknown key"),
])
def test_bad_values_name_the_key(key, value, message):
    section = dict(compose()["aae_ssl"], **{key: value})
    with pytest.raises(ParamError) as err:
        parse(aae_ssl.Config, section, "aae_ssl")
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_variant_must_be_in_the_sweep():
    cfg = parse(aae_ssl.Config, compose()["aae_ssl"], "aae_ssl")
    variant = parse_variant("aae_ssl", "ae-100-0", ["model=ae", "n_labeled=100", "seed=0"], cfg, aae_ssl.AXES)
    assert variant.axes == {"model": "ae", "n_labeled": 100, "seed": 0}
    with pytest.raises(ParamError, match=r"aae_ssl.models: variant model='gan' is not in the sweep"):
        parse_variant("aae_ssl", "k", ["model=gan", "n_labeled=100", "seed=0"], cfg, aae_ssl.AXES)


def test_variant_key_must_be_its_axes_and_each_axis_given_once():
    """A key that disagrees with its axes would train one variant into another's folder (the key names the
    folder, the axes what is trained); a repeated axis would let the last value win silently."""
    cfg = parse(aae_ssl.Config, compose()["aae_ssl"], "aae_ssl")
    with pytest.raises(ParamError, match=r"aae_ssl variant ae-100-0: the key does not match its axes \(model=aae_z "
                                         r"n_labeled=100 seed=0 give aae_z-100-0\)"):
        parse_variant("aae_ssl", "ae-100-0", ["model=aae_z", "n_labeled=100", "seed=0"], cfg, aae_ssl.AXES)
    with pytest.raises(ParamError, match=r"aae_ssl variant ae-100-0: model= given twice \(model=ae, model=aae_z\)"):
        parse_variant("aae_ssl", "ae-100-0", ["model=ae", "n_labeled=100", "seed=0", "model=aae_z"], cfg,
                      aae_ssl.AXES)
    # the axes in another order on the command line are the same variant
    assert parse_variant("aae_ssl", "ae-100-0", ["seed=0", "model=ae", "n_labeled=100"], cfg, aae_ssl.AXES).axes == {
        "seed": 0, "model": "ae", "n_labeled": 100}
    # a prefix the paper does not declare (KEY_PREFIXES) would train into a folder no stage reads
    with pytest.raises(ParamError, match=r"^aae_ssl variant x-ae-100-0: x- is not a key prefix of aae_ssl \(allowed: "
                                         r"none; model=ae n_labeled=100 seed=0 give ae-100-0\)$"):
        parse_variant("aae_ssl", "x-ae-100-0", ["model=ae", "n_labeled=100", "seed=0"], cfg, aae_ssl.AXES)


def test_every_train_and_evaluate_stage_of_dvc_yaml_names_its_own_variant():
    """Each resolved stage command `python src/replab train|evaluate <paper> <key> axis=value …` parses: its key
    is its axes (the check above holds for every stage DVC runs)."""
    import shlex

    from dvc.repo import Repo

    from conftest import REPO
    from replab.cli import command_variant
    from replab.papers import paper_module
    from replab.params import load_section

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    checked = 0
    with Repo(str(REPO)) as repo:
        for stage in repo.index.stages:
            argv = shlex.split(stage.cmd) if isinstance(stage.cmd, str) else []
            if argv[2:3] not in (["train"], ["evaluate"]):
                continue
            paper, key, assignments = argv[3], argv[4], argv[5:]
            cfg = load_section(paper_module(paper).Config, paper, params=params)
            variant = command_variant(paper, key, assignments, cfg, argv[2] == "evaluate")
            assert variant.key == key, stage.addressing
            # the same variant from the key alone (`replab train aae_ssl ae-100-0`): its axes read off the key
            assert command_variant(paper, key, [], cfg, argv[2] == "evaluate") == variant, stage.addressing
            checked += 1
    assert checked >= 40


def test_axes_read_off_a_key_are_checked_as_given_ones():
    from replab.cli import command_variant
    from replab.papers import paper_module
    from replab.params import load_section

    cfg = load_section(paper_module("aae_ssl").Config, "aae_ssl", params=compose())
    assert command_variant("aae_ssl", "ae-100-0", [], cfg, False).axes == {"model": "ae", "n_labeled": 100, "seed": 0}
    with pytest.raises(ParamError, match=r"^params.yaml: aae_ssl.n_labeled: variant n_labeled='7' is not in the "
                                         r"sweep \(allowed: "):
        command_variant("aae_ssl", "ae-7-0", [], cfg, False)
    with pytest.raises(ParamError, match=r"^aae_ssl variant ae-100: missing model=…, n_labeled=…, seed=…$"):
        command_variant("aae_ssl", "ae-100", [], cfg, False)  # too few parts: nothing read off


def test_cli_reports_bad_params_in_one_line(in_tmp, capsys):
    params = compose()
    params["runtime"]["device"] = "tpu"
    (in_tmp / "params.yaml").write_text(yaml.safe_dump(params))
    assert main(["check"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("error: params.yaml: runtime.device = 'tpu': not allowed (allowed: auto, cpu, cuda, mps)")


def test_compose_with_a_bad_override_leaves_params_yaml_as_it_was(in_tmp, capsys):
    import shutil

    shutil.copytree(REPO / "conf", in_tmp / "conf")
    before = (REPO / "params.yaml").read_text()
    (in_tmp / "params.yaml").write_text(before)
    assert main(["compose", "runtime.compile_mode=fast"]) == 2
    assert "runtime.compile_mode = 'fast': not allowed" in capsys.readouterr().err
    assert (in_tmp / "params.yaml").read_text() == before
    assert sorted(p.name for p in in_tmp.iterdir()) == ["conf", "params.yaml"]  # no temp file left
    capsys.readouterr()
    assert main(["compose", "runtime.compile_mode=reduce-overhead"]) == 0
    assert capsys.readouterr().out == ("params.yaml: rewritten from conf/ (runtime.compile_mode=reduce-overhead) "
                                       "and checked\n")
    assert yaml.safe_load((in_tmp / "params.yaml").read_text())["runtime"]["compile_mode"] == "reduce-overhead"


def test_check_and_sweep_name_an_unknown_profile_in_one_line(in_tmp, capsys):
    from replab.compare import plan_grid

    (in_tmp / "conf" / "profile").mkdir(parents=True)
    (in_tmp / "conf" / "profile" / "quick.yaml").write_text(
        "# @package _global_\nmeta: {profile: quick, profile_file: conf/profile/quick.yaml}\n")
    params = compose()
    params["meta"]["profile"] = "nosuch"
    (in_tmp / "params.yaml").write_text(yaml.safe_dump(params))
    assert main(["check"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: params.yaml: meta.profile = 'nosuch': no conf/profile/nosuch.yaml (known: quick)")
    with pytest.raises(ParamError, match=r"^sweep --profile big: no conf/profile/big.yaml \(known: quick\)$"):
        plan_grid("aae_ssl", ["lambda_rec=1,2"], profile="big")
    # `../config` names conf/config.yaml: it passed, and the sweep blamed its grid point for Hydra's failure
    (in_tmp / "conf" / "config.yaml").write_text("meta: {}\n")
    params["meta"]["profile"] = "../config"
    (in_tmp / "params.yaml").write_text(yaml.safe_dump(params))
    assert main(["check"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: params.yaml: meta.profile = '../config': no conf/profile/../config.yaml (known: quick)")


def test_meta_profile_must_be_the_profile_composed(in_tmp, capsys):
    """`dvc exp run -S meta.profile=paper` (or `replab compose meta.profile=paper`) relabelled the quick profile's
    values as paper: the report and `replab compare` said paper, and `replab sweep` queued paper-scale runs on real
    data. The profile file sets meta.profile_file too; a meta.profile that is not its profile is refused, as are
    keys under meta other than these two."""
    import shutil

    shutil.copytree(REPO / "conf", in_tmp / "conf")
    params = compose()
    assert params["meta"] == {"profile": "quick", "profile_file": "conf/profile/quick.yaml"}
    for profile in ("paper", "smoke"):
        assert compose(f"profile={profile}")["meta"] == {"profile": profile,
                                                         "profile_file": f"conf/profile/{profile}.yaml"}
    for meta, message in (
            ({"profile": "paper", "profile_file": "conf/profile/quick.yaml"},
             "meta.profile = 'paper': the profile composed is meta.profile_file = 'conf/profile/quick.yaml' (choose a "
             "profile with `-S profile=paper` or `replab compose profile=paper`, which set both; meta.profile alone "
             "changes no value)"),
            ({"profile": "quick", "profile_file": "conf/profile/quick.yaml", "extra": 1},
             "meta.extra: unknown key (allowed: profile, profile_file)")):
        (in_tmp / "params.yaml").write_text(yaml.safe_dump({**params, "meta": meta}))
        assert main(["check"]) == 2
        assert capsys.readouterr().err == f"error: params.yaml: {message}\n"
    assert main(["compose", "meta.profile=paper"]) == 2  # refused, params.yaml as it was
    assert capsys.readouterr().err.startswith("error: compose meta.profile=paper: meta.profile = 'paper': the profile ")
    (in_tmp / "params.yaml").write_text(yaml.safe_dump({**params, "meta": {"profile": "quick"}}))  # an older run's
    assert main(["check"]) == 0


def _float_leaves(node, path: str):
    """(dotted key as errors name it, path of keys/indices) of every float in a params subtree."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from ((key, [k, *rest]) for key, rest in _float_leaves(v, f"{path}.{k}"))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from ((key, [i, *rest]) for key, rest in _float_leaves(v, f"{path}[{i}]"))
    elif isinstance(node, float):
        yield path, []


def _validated_sections(params: dict) -> list[tuple[str, list, object]]:
    """(dotted root, keys to it, validator of the whole params) of every section replab validates."""
    from replab.cli import PAPERS, paper_module
    from replab.data import registry
    from replab.params import load_runtime, load_section

    roots = [("runtime", ["runtime"], lambda p: load_runtime(params=p))]
    roots += [(name, [name], lambda p, n=name: load_section(paper_module(n).Config, n, params=p))
              for name in PAPERS if name in params]
    roots += [(f"data.{d}", ["data", d], lambda p, d=d: registry.load_data_params(d, params=p))
              for d in params["datasets"] if d in registry.SOURCES and d in params["data"]]
    return roots


@pytest.mark.parametrize("profile", ["quick", "paper"])
def test_every_float_param_must_be_finite(profile):
    """`.inf` passes `> 0` and `.nan` fails no comparison: every float key of every section rejects both, and a
    value finite in float64 but beyond float32's range (1e39), with its own bound where it has one."""
    params = compose(f"profile={profile}")
    checked, float32 = [], []
    for dotted, keys, validate in _validated_sections(params):
        node = params
        for k in keys:
            node = node[k]
        for i, (key, rest) in enumerate(_float_leaves(node, dotted)):
            bad = float("inf") if i % 2 == 0 else float("nan")
            changed = yaml.safe_load(yaml.safe_dump(params))
            target = changed
            for k in (keys + rest)[:-1]:
                target = target[k]
            target[(keys + rest)[-1]] = bad
            changed = yaml.safe_load(yaml.safe_dump(changed))  # as read back from YAML's .inf / .nan
            with pytest.raises(ParamError) as err:
                validate(changed)
            hint = BEYOND_FLOAT64 if math.isinf(bad) else ""
            assert str(err.value) == f"params.yaml: {key} = {bad!r}: must be finite{hint}", key
            big = 1e39 if i % 2 == 0 else 3.5e38  # finite in float64, not in float32: refused too (it passed)
            changed = yaml.safe_load(yaml.safe_dump(params))
            target = changed
            for k in (keys + rest)[:-1]:
                target = target[k]
            target[(keys + rest)[-1]] = big
            with pytest.raises(ParamError) as err:
                validate(yaml.safe_load(yaml.safe_dump(changed)))
            assert str(err.value).startswith(f"params.yaml: {key} = {big!r}: must be ") and "\n" not in str(err.value)
            if str(err.value).endswith("must be within ±3.403e+38 (float32's range, the tensors' precision)"):
                float32.append(key)  # (the others name their own tighter bound: dropout < 1.0)
            checked.append(key)
    assert len(checked) > 20 and "aae_ssl.lr" in checked and any(k.startswith("data.") for k in checked)
    assert {"aae_ssl.lr", "censor.adversarial.lr", "split_vae.c2", "aae_ssl.lambda_rec"} <= set(float32)


def test_infinite_lr_is_one_line_naming_the_key(in_tmp, capsys):
    text = yaml.safe_dump(compose()).replace("lr: 0.0001\n", "lr: .inf\n", 1)
    assert "lr: .inf" in text
    (in_tmp / "params.yaml").write_text(text)
    assert main(["check"]) == 2
    assert capsys.readouterr().err == f"error: params.yaml: aae_ssl.lr = inf: must be finite{BEYOND_FLOAT64}\n"


@pytest.mark.parametrize(("literal", "read_as"), [("1e-400", "0.0"), ("-2.5E+999", "-inf")])
def test_a_number_beyond_float64_is_refused_where_it_is_written(in_tmp, capsys, literal, read_as):
    """YAML reads 1e-400 as 0.0 and 1e400 as inf: the error showed a value the user never wrote (or none at all:
    `lambda_rec: 1e-400` turned the term off)."""
    text = yaml.safe_dump(compose()).replace("lr: 0.0001\n", f"lr: {literal}\n", 1)
    (in_tmp / "params.yaml").write_text(text)
    line = text[:text.index(literal)].count("\n") + 1
    assert main(["check"]) == 2
    assert capsys.readouterr().err == (f"error: params.yaml: not valid YAML (at line {line}: {literal} is beyond "
                                       f"float64's range (it would read as {read_as}; allowed: 0 or magnitudes "
                                       "2.2e-308 … 1.8e308))\n")


def test_integers_beyond_float64_or_pythons_digit_limit_are_one_line(in_tmp, capsys):
    """`lr: 1` and 400 zeros (a YAML integer) raised OverflowError in float(); 5,000 digits, ValueError inside the
    YAML parser: tracebacks. The refusal shows the number by its ends and length."""
    params = compose()
    params["aae_ssl"]["lr"] = 10**400
    with pytest.raises(ParamError) as err:
        load_section(aae_ssl.Config, "aae_ssl", params=params)
    assert str(err.value) == f"params.yaml: aae_ssl.lr = 1000…00 (401 digits): must be finite{BEYOND_FLOAT64}"
    params["aae_ssl"]["lr"], params["aae_ssl"]["iterations"] = 1e-4, -(10**30)
    with pytest.raises(ParamError) as err:
        load_section(aae_ssl.Config, "aae_ssl", params=params)
    assert str(err.value).startswith("params.yaml: aae_ssl.iterations = -1000…00 (31 digits): must be >= ")
    text = yaml.safe_dump(compose()).replace("lr: 0.0001\n", f"lr: {'9' * 5000}\n", 1)
    (in_tmp / "params.yaml").write_text(text)
    line = text[:text.index("9" * 5000)].count("\n") + 1
    assert main(["check"]) == 2
    assert capsys.readouterr().err == (f"error: params.yaml: not valid YAML (at line {line}: an integer of 5,000 "
                                       "characters (Python reads at most 4,300 digits))\n")


def test_a_value_that_became_zero_or_inf_before_replab_read_it_says_how(in_tmp):
    """`dvc exp run -S aae_ssl.lr=1e-400` composes params.yaml through Hydra, which writes 0.0: the literal is gone,
    so the refusal says what such a number reads as."""
    params = compose()
    for value, message in ((0.0, f"aae_ssl.lr = 0.0: must be > 0.0{BELOW_FLOAT64}"),
                           (float("inf"), f"aae_ssl.lr = inf: must be finite{BEYOND_FLOAT64}")):
        params["aae_ssl"]["lr"] = value
        with pytest.raises(ParamError) as err:
            load_section(aae_ssl.Config, "aae_ssl", params=params)
        assert str(err.value) == f"params.yaml: {message}"


@pytest.mark.parametrize("written, message", [
    ("0", "attention_vat.eps_attention = 0.0: must be > 0.0"),  # written 0: no number that underflowed
    ("0.0", f"attention_vat.eps_attention = 0.0: must be > 0.0{BELOW_FLOAT64}"),  # maybe Hydra's 0.0 for 1e-400
    ("null", "attention_vat.eps_attention = null: must be a number"),
])
def test_a_zero_written_as_such_gets_no_underflow_hint_and_none_reads_null(written, message, in_tmp, capsys):
    """`attention_vat.eps_attention=0` was told that a number nearer 0 than 2.2e-308 reads as 0.0, which nobody
    wrote; YAML's null was shown as Python's None."""
    text = yaml.safe_dump(compose()).replace("eps_attention: 1.0\n", f"eps_attention: {written}\n", 1)
    assert f"eps_attention: {written}\n" in text
    (in_tmp / "params.yaml").write_text(text)
    assert main(["check"]) == 2
    assert capsys.readouterr().err == f"error: params.yaml: {message}\n"


def test_null_in_a_message_is_written_as_yaml_writes_it():
    from dataclasses import dataclass

    from replab.params import param, shown

    @dataclass(frozen=True)
    class Section:
        methods: list[str] = param(["a"])
        sizes: dict[str, int] = param({"x": 1})

    for data, message in (({"methods": None}, "s.methods = null: must be a list"),
                          ({"methods": ["a", None]}, "s.methods[1] = null: must be a string"),
                          ({"sizes": [None]}, "s.sizes = [null]: must be a mapping")):
        with pytest.raises(ParamError) as err:
            parse(Section, data, "s")
        assert str(err.value) == message
    assert shown({"a": [None, "b"], "c": 1.5}) == "{'a': [null, 'b'], 'c': 1.5}" and shown("") == "''"


def test_finite_check_is_generic():
    from dataclasses import dataclass

    from replab.params import param

    @dataclass(frozen=True)
    class Section:
        a: float = param(1.0, ge=0.0)
        b: float | None = param(None)
        c: list[float] = param([1.0], nonempty=True)
        d: dict[str, float] = param({"x": 1.0})
        n: int = param(1)

    assert parse(Section, {"a": 2, "b": None, "c": [0.5, 2], "d": {"y": -3.4e38}}, "s").c == [0.5, 2.0]
    with pytest.raises(ParamError, match=r"^s\.d\.y = -1e\+300: must be within ±3\.403e\+38 \(float32's range"):
        parse(Section, {"d": {"y": -1e300}}, "s")  # finite, but not in the float32 tensors it would scale
    for data, key in (({"a": float("inf")}, "s.a = inf"), ({"b": float("-inf")}, "s.b = -inf"),
                      ({"c": [1.0, float("nan")]}, "s.c[1] = nan"), ({"d": {"y": float("nan")}}, "s.d.y = nan")):
        with pytest.raises(ParamError) as err:
            parse(Section, data, "s")
        assert str(err.value) == f"{key}: must be finite" + (BEYOND_FLOAT64 if "inf" in key else "")
    with pytest.raises(ParamError, match=r"s\.n = inf: must be an integer"):
        parse(Section, {"n": float("inf")}, "s")


def test_values_dvc_exp_run_writes_read_as_dvc_reads_them(in_tmp, capsys):
    """`dvc exp run -S` rewrites params.yaml with DVC's YAML 1.2 writer: replab must train with the value DVC
    shows. PyYAML read `lr: 1e-05` (what `-S aae_ssl.lr=1e-5` writes) as the string '1e-05' and stopped the
    experiment, and `compile: yes` as true while `dvc exp show` showed the string 'yes'."""
    from dvc.utils.hydra import apply_overrides

    from replab.params import load_section

    (in_tmp / "params.yaml").write_text((REPO / "params.yaml").read_text())
    apply_overrides("params.yaml", ["aae_ssl.lr=1e-5"])
    assert "lr: 1e-05\n" in (in_tmp / "params.yaml").read_text()  # DVC's spelling, no decimal point
    cfg = load_section(aae_ssl.Config, "aae_ssl")
    assert cfg.lr == 1e-5 and isinstance(cfg.lr, float)
    apply_overrides("params.yaml", ["runtime.compile=yes"])
    assert main(["check"]) == 2
    assert capsys.readouterr().err == "error: params.yaml: runtime.compile = 'yes': must be true or false\n"


@pytest.mark.parametrize("scalar", ["1e-05", "2.5e-05", "yes", "No", "on", "OFF", "010", "0o10", "0x1F", "1:20",
                                    ".5", "1_000", "~", "null", "True", ".inf", "-.Inf", ".NaN", "'1e-05'"])
def test_every_scalar_reads_as_dvc_reads_it(scalar):
    import math

    from dvc.utils.serialize import parse_yaml as dvc_parse_yaml

    from replab.io import parse_yaml

    ours, dvcs = parse_yaml(f"a: {scalar}\n")["a"], dvc_parse_yaml(f"a: {scalar}\n", "params.yaml")["a"]
    assert type(ours) is type(dvcs) and (ours == dvcs or (math.isnan(ours) and math.isnan(dvcs))), scalar


def test_a_tab_in_the_indentation_is_named(in_tmp, capsys):
    (in_tmp / "params.yaml").write_text("meta:\n\tprofile: quick\n")
    assert main(["check"]) == 2
    assert capsys.readouterr().err == ("error: params.yaml: not valid YAML (while scanning for the next token found "
                                       "character that cannot start any token at line 2, column 1: a tab (YAML "
                                       "indents with spaces only))\n")


def test_a_repeated_key_is_one_line_naming_the_file(in_tmp, capsys):
    """PyYAML kept the last of two `lr:` keys silently; DVC refuses the file, and so does replab."""
    text = (REPO / "params.yaml").read_text().replace("  lr: 0.0001\n", "  lr: 0.0001\n  lr: 0.1\n", 1)
    (in_tmp / "params.yaml").write_text(text)
    assert main(["check"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: params.yaml: not valid YAML (") and err.count("\n") == 1
    assert 'found duplicate key "lr"' in err and "at line" in err


@pytest.mark.parametrize("argv, expected", [
    (["bench", "--compile", "fast"], "error: replab bench: argument --compile: invalid choice: 'fast' (choose from "
     "'default', 'reduce-overhead', 'max-autotune', 'max-autotune-no-cudagraphs') (see replab bench -h)\n"),
    (["bench", "--steps", "x"],
     "error: replab bench: argument --steps: invalid int value: 'x' (see replab bench -h)\n"),
    (["trian"], "error: replab: argument command: invalid choice: 'trian' (choose from 'download', 'prepare', "
     "'train', 'evaluate', 'curves', 'report', 'compose', 'check', 'bench', 'sweep', 'compare') (see replab -h)\n"),
])
def test_a_command_line_usage_error_is_one_line(argv, expected, capsys):
    """argparse printed its whole usage before the error (4 lines for a bad `bench --compile`)."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    out = capsys.readouterr()
    assert out.err == expected and out.out == ""


def test_train_all_says_it_is_an_evaluation_key(monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    assert main(["train", "aae_ssl", "all"]) == 2  # was "missing model=…, n_labeled=…": not a training key
    assert capsys.readouterr().err == (
        "error: train aae_ssl all: `all` is for `replab evaluate`; training is one stage per variant "
        "(`dvc repro --glob 'train_aae_ssl*'`, or one of `dvc stage list`)\n")
    # attention_vat evaluates per data set (`evaluate-<dataset>`), it has no `all`: its keys are named instead
    assert main(["train", "attention_vat", "all"]) == 2
    err = capsys.readouterr().err
    assert "is for `replab evaluate`" not in err and "`evaluate evaluate-<dataset> dataset=…`" in err


@pytest.mark.parametrize("override, message", [
    ("profile=nosuch", "error: compose profile=nosuch: no conf/profile/nosuch.yaml (known: paper, quick, smoke)"),
    ("aae_ssl.lambda_recc=1", "error: compose aae_ssl.lambda_recc=1: conf/ does not compose: Could not override "
                              "'aae_ssl.lambda_recc'. To append to your config use +aae_ssl.lambda_recc=1"),
    ("aae_ssl.lr=${oops}", "error: compose aae_ssl.lr=${oops}: conf/ does not compose: Interpolation key 'oops' "
                           "not found"),
])
def test_compose_reports_hydras_errors_in_one_line(override, message, in_tmp, capsys):
    """Hydra raised a 57-line traceback for an unknown key, profile or interpolation."""
    import shutil

    shutil.copytree(REPO / "conf", in_tmp / "conf")
    before = (REPO / "params.yaml").read_text()
    (in_tmp / "params.yaml").write_text(before)
    assert main(["compose", override]) == 2
    assert capsys.readouterr().err == message + "\n"
    assert (in_tmp / "params.yaml").read_text() == before


def test_an_override_with_a_line_break_is_named_in_one_line(in_tmp, capsys):
    """A value pasted with its line break printed the error over two lines; it is shown as its escape."""
    import shutil

    shutil.copytree(REPO / "conf", in_tmp / "conf")
    (in_tmp / "params.yaml").write_text((REPO / "params.yaml").read_text())
    assert main(["compose", "runtime.cuda_graph=may\nbe"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: compose runtime.cuda_graph=may\\nbe: conf/ does not compose: ")
    assert err.count("\n") == 1 and err.endswith("\n")


def test_a_usage_error_shows_control_characters_as_escapes(capsys):
    """argparse's errors (an unknown argument) go through the same escape: a terminal never runs one."""
    with pytest.raises(SystemExit) as exit_:
        main(["report", "x\x1b[31my"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "x\\x1b[31my" in err and "\x1b" not in err and err.count("\n") == 1


def _without(params: dict, key: str) -> dict:
    return {k: v for k, v in params.items() if k != key}


@pytest.mark.parametrize("edit, message", [
    (lambda p: {**p, "aae_sl": {}}, "params.yaml: aae_sl: unknown section (allowed: meta, runtime, images, datasets, "
                                    "data, aae_ssl, split_vae, censor, autoencoder, attention_vat)"),
    (lambda p: _without(p, "censor"), "params.yaml: section `censor` is missing (`replab compose` writes every "
                                      "section)"),
    (lambda p: _without(p, "datasets"), "params.yaml: section `datasets` is missing (`replab compose` writes every "
                                        "section)"),
    (lambda p: {**p, "meta": []}, "params.yaml: meta = []: must be a mapping (meta.profile: the profile composed)"),
    (lambda p: {**p, "meta": None}, "params.yaml: meta = null: must be a mapping (meta.profile: the profile composed)"),
    (lambda p: {**p, "datasets": "mnist5k"}, "params.yaml: datasets = 'mnist5k': must be a non-empty list of data "
                                             "set names"),
    (lambda p: {**p, "datasets": ["mnist5k", "writers", "mnist5k"]}, "params.yaml: datasets = ['mnist5k', 'writers', "
                                                                    "'mnist5k']: values must be distinct"),
    # -0.0 is 0.0: two matrix items (train_censor@afl_mlp-0.0-0 and …--0.0-0) training one model twice
    (lambda p: {**p, "censor": {**p["censor"], "lambdas": [0.0, -0.0]}}, "params.yaml: censor.lambdas = [0.0, -0.0]: "
                                                                        "values must be distinct"),
    # a list in `datasets` (`replab compose 'images=[mnist5k]'`) raised TypeError; null read "dataset = None"
    (lambda p: {**p, "datasets": [["mnist5k"], "writers"]}, "params.yaml: datasets[0] = ['mnist5k']: unknown data "
     "set (allowed: mnist5k, mnist, fashion_mnist, writers, emnist_writers, har, usc_had, rt_snippets, sst, imdb, "
     "eraser_movies, lm1b, fasttext)"),
    (lambda p: {**p, "datasets": ["mnist5k", None]}, "params.yaml: datasets[1] = null: unknown data set (allowed: "
     "mnist5k, mnist, fashion_mnist, writers, emnist_writers, har, usc_had, rt_snippets, sst, imdb, eraser_movies, "
     "lm1b, fasttext)"),
    # `images` passed whatever it held, and `dvc exp show` / `replab compare` showed it beside the sets used
    (lambda p: {**p, "images": "har"}, "params.yaml: images = 'har': must be an image data set (allowed: mnist5k, "
     "mnist, fashion_mnist)"),
    (lambda p: {**p, "images": ["mnist5k"]}, "params.yaml: images = ['mnist5k']: must be an image data set (allowed: "
     "mnist5k, mnist, fashion_mnist)"),
    # a pin that can never match passed, to fail as a mismatch after the download
    (lambda p: {**p, "data": {**p["data"], "fasttext": {**p["data"]["fasttext"], "sha256": "abc"}}},
     "params.yaml: data.fasttext.sha256 = 'abc': must be a sha256 in 64 lowercase hex digits (as sha256sum prints "
     "it), or null"),
    # a one-image "grid" whose second tick lies far outside the range
    (lambda p: {**p, "aae_ssl": {**p["aae_ssl"], "style": {**p["aae_ssl"]["style"], "grid_step": 100.0}}},
     "params.yaml: aae_ssl.style.grid_step = 100: wider than the grid, 2 · grid_range = 60 (allowed: at most that, "
     "for at least 2 images a side)"),
    (lambda p: {**p, "data": {**p["data"], "mnist5k": []}}, "params.yaml: data.mnist5k must be a mapping, got a list"),
    (lambda p: {**p, "data": {**p["data"], "mnist5k": 0}},
     "params.yaml: data.mnist5k must be a mapping, got an integer"),
    # sets the quick profile does not prepare are checked too: a typo there passed until a profile used them
    (lambda p: {**p, "data": {**p["data"], "eraser_movies": {**p["data"]["eraser_movies"], "unlabeled": "bogus"}}},
     "params.yaml: data.eraser_movies.unlabeled = 'bogus': not allowed (allowed: none, lm1b, imdb_unsup)"),
    (lambda p: {**p, "data": {**p["data"], "sst": {**p["data"]["sst"], "n_unlabeled": -3}}},
     "params.yaml: data.sst.n_unlabeled = -3: must be >= 0"),
    (lambda p: {**p, "data": {**p["data"], "eraser": {}}}, "params.yaml: data.eraser: unknown data set (allowed: "
     "split_seed, mnist5k, mnist, fashion_mnist, writers, emnist_writers, har, usc_had, rt_snippets, sst, imdb, "
     "eraser_movies, lm1b, fasttext)"),
    # a deleted key ran on the code's default (attention_vat.lr 1e-3, not quick's 3e-3) with no word
    (lambda p: {**p, "attention_vat": _without(p["attention_vat"], "lr")},
     "params.yaml: attention_vat.lr: missing (params.yaml sets every key: `replab compose profile=<name>` writes "
     "them all, `dvc exp run -S` edits them)"),
    (lambda p: {**p, "aae_ssl": {**p["aae_ssl"], "style": _without(p["aae_ssl"]["style"], "z_dim")}},
     "params.yaml: aae_ssl.style.z_dim: missing (params.yaml sets every key: `replab compose profile=<name>` writes "
     "them all, `dvc exp run -S` edits them)"),
    (lambda p: {**p, "runtime": _without(p["runtime"], "threads")},
     "params.yaml: runtime.threads: missing (params.yaml sets every key: `replab compose profile=<name>` writes "
     "them all, `dvc exp run -S` edits them)"),
    # a set no stage prepares passed check, compose and sweep, and failed in the training stage
    (lambda p: {**p, "attention_vat": {**p["attention_vat"], "datasets": ["rt_snippets", "sst"]}},
     "params.yaml: attention_vat.datasets = ['rt_snippets', 'sst']: sst is not in `datasets` (no stage prepares "
     "it; add it there: now mnist5k, writers, har, rt_snippets)"),
    (lambda p: {**p, "censor": {**p["censor"], "dataset": "usc_had"}},
     "params.yaml: censor.dataset = 'usc_had': usc_had is not in `datasets` (no stage prepares it; add it there: "
     "now mnist5k, writers, har, rt_snippets)"),
    (lambda p: {**p, "aae_ssl": {**p["aae_ssl"], "seeds": [0, 2**31]}},
     "params.yaml: aae_ssl.seeds[1] = 2147483648: must be <= 2147483647"),
    # 100,000 passed and every training stage died in a segfault (OpenMP), with no message
    (lambda p: {**p, "runtime": {**p["runtime"], "threads": 100_000}},
     "params.yaml: runtime.threads = 100000: must be <= 1024"),
    # Adam's ε of 1e30 (or 1e7 for 1e-7) trained every autoencoder at chance, without a word
    (lambda p: {**p, "autoencoder": {**p["autoencoder"], "eps": 1e7}},
     "params.yaml: autoencoder.eps = 10000000.0: must be <= 1.0"),
    # `data: null` was called missing
    (lambda p: {**p, "data": None}, "params.yaml: data must be a mapping, got null"),
])
def test_check_refuses_a_malformed_section(edit, message, in_tmp, capsys):
    """These passed `replab check` (or raised AttributeError) and failed later, at DVC's render or in a stage."""
    (in_tmp / "params.yaml").write_text(yaml.safe_dump(edit(compose())))
    assert main(["check"]) == 2
    assert capsys.readouterr().err == f"error: {message}\n"


def test_the_check_params_stage_stops_a_device_this_machine_lacks(in_tmp, capsys, monkeypatch):
    """`dvc exp run -S runtime.device=cuda` on a machine without a GPU passed check_params, and the first training
    stage failed after DVC had deleted its outputs. The stage (`check --marker`) runs where the stages will train;
    a plain `replab check` (a sweep planned on a login node for GPU nodes) does not look at this machine."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    params = compose()
    params["runtime"]["device"] = "cuda"
    (in_tmp / "params.yaml").write_text(yaml.safe_dump(params))
    assert main(["check"]) == 0
    capsys.readouterr()
    assert main(["check", "--marker", "data/params.checked"]) == 2
    assert capsys.readouterr().err == ("error: params.yaml: runtime.device = 'cuda': no CUDA device is visible "
                                       "(allowed here: auto, cpu)\n")
    assert not (in_tmp / "data" / "params.checked").exists()


@pytest.mark.parametrize("make, message", [
    (lambda path: path.write_bytes(b"runtime: {}\n\xff\xfe"), "params.yaml: not UTF-8 text (byte 12: invalid "
                                                                 "start byte)"),
    (lambda path: path.mkdir(), "params.yaml: cannot be read (Is a directory)"),
    # a FIFO with no writer blocked `check` (and every stage) for ever
    (lambda path: os.mkfifo(path), "params.yaml: is a named pipe; allowed: a YAML file"),
])
def test_an_unreadable_params_yaml_is_one_line(make, message, in_tmp, capsys):
    make(in_tmp / "params.yaml")
    assert main(["check"]) == 2
    assert capsys.readouterr().err == f"error: {message}\n"


def test_running_out_of_memory_is_one_line_and_other_errors_still_raise(monkeypatch, capsys):
    """attention_vat.embedding_dim = 100000000000 passed check and the stage ended in the allocator's traceback."""
    import torch

    from replab import cli

    def allocate(args):
        torch.empty(10**15)  # 4 PB: PyTorch's CPU allocator refuses it (a RuntimeError)

    monkeypatch.setattr(cli, "_check", allocate)
    assert main(["check"]) == 2
    assert capsys.readouterr().err == (
        "error: out of memory (tried to allocate 4000000000000000 bytes): the sizes in params.yaml (batch sizes, "
        "hidden and embedding sizes, data set sizes) are too large for this device's memory\n")

    def other(args):
        raise RuntimeError("a bug, not memory")

    monkeypatch.setattr(cli, "_check", other)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["check"])
    # a stage's command names the section whose sizes it read
    assert cli.out_of_memory(MemoryError(), "data.writers") == (
        "out of memory: params.yaml's data.writers sizes (batch sizes, hidden and embedding sizes, data set sizes) are "
        "too large for this device's memory")
    monkeypatch.setattr("replab.data.registry.prepare", lambda name: allocate(None))
    assert main(["prepare", "writers"]) == 2
    assert "error: out of memory (tried to allocate 4000000000000000 bytes): params.yaml's data.writers sizes" in (
        capsys.readouterr().err)


# ---------------------------------------------------------------------------------------------------------
# Upper bounds: an absurd size or count fails at `replab check`, not deep inside PyTorch

# int params (key path as errors name it, list fields too) that may go without an upper bound, each with the reason.
# None at present: a size param takes `le=MAX_SIZE`, a count `le=MAX_COUNT`, a seed `le=SEED_MAX` (replab.params).
UNBOUNDED_INT_PARAMS: dict[str, str] = {}


def _int_fields(cls, where: str):
    """(key path, field) of every int and list[int] field of the dataclass `cls`, nested sections included."""
    import dataclasses
    import types
    import typing

    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if typing.get_origin(tp) in (typing.Union, types.UnionType):  # int | None
            tp = next(a for a in typing.get_args(tp) if a is not type(None))
        if dataclasses.is_dataclass(tp):
            yield from _int_fields(tp, f"{where}.{f.name}")
        elif tp is int or (typing.get_origin(tp) is list and typing.get_args(tp) == (int,)):
            yield f"{where}.{f.name}", f


def _config_sections() -> list[tuple[str, type]]:
    """(section as errors name it, config class) of every paper and every data source."""
    from replab.data import registry
    from replab.papers import PAPERS, paper_module

    return ([(paper, paper_module(paper).Config) for paper in PAPERS]
            + [(f"data.{name}", source.config_class()) for name, source in registry.SOURCES.items()])


def test_every_int_param_has_an_upper_bound():
    """`aae_ssl.hidden: 99999999999999999999999` passed `replab check` (ge=1 and no upper bound) and the training
    stage died in PyTorch ("Storage size calculation overflowed"). Every int param of the papers' and the data
    sources' sections (nested sections and list[int] elements too), with a lower bound (`ge`/`gt`) or without,
    has a finite upper one (`le`/`lt`) or is exempted in UNBOUNDED_INT_PARAMS with its reason."""
    from replab.params import SEED_MAX

    checked, unbounded = [], []
    for section, cls in _config_sections():
        for key, f in _int_fields(cls, section):
            checked.append(key)
            upper = next((f.metadata[b] for b in ("le", "lt") if f.metadata.get(b) is not None), None)
            if upper is None:
                if key not in UNBOUNDED_INT_PARAMS:
                    unbounded.append(key)
            else:  # finite and within any index type (the largest in use: SEED_MAX = 2**31 - 1)
                assert isinstance(upper, int) and upper <= SEED_MAX, f"{key}: upper bound {upper!r}"
    assert not unbounded, (f"int params without an upper bound (give them le=MAX_SIZE, le=MAX_COUNT or le=SEED_MAX "
                           f"from replab.params, or a reason in UNBOUNDED_INT_PARAMS): {', '.join(unbounded)}")
    assert set(UNBOUNDED_INT_PARAMS) <= set(checked), "UNBOUNDED_INT_PARAMS names a key that is no int param"
    assert {"aae_ssl.hidden", "aae_ssl.style.iterations", "censor.encoder.filters", "censor.adversarial.batch_size",
            "attention_vat.fig2.epochs", "split_vae.exp2.n_writers", "data.usc_had.window",
            "data.imdb.random_state"} <= set(checked)
    assert len(checked) > 80


def test_an_absurd_hidden_size_is_one_line_at_check():
    """The fault as reported: `aae_ssl.hidden: 10**23` in a composed params dict."""
    from conftest import one_line_naming
    from replab.papers import check_params
    from replab.params import MAX_SIZE

    params = compose()
    params["aae_ssl"]["hidden"] = 10**23
    with pytest.raises(ParamError) as err:
        check_params(params)
    assert one_line_naming(err, "aae_ssl.hidden") == (
        f"params.yaml: aae_ssl.hidden = 100000000000000000000000: must be <= {MAX_SIZE}")


@pytest.mark.parametrize(("keys", "value", "message"), [
    (("censor", "encoder", "filters", 1), 10**23, "censor.encoder.filters[1] = 100000000000000000000000: "
                                                  "must be <= 1048576"),
    (("attention_vat", "batch_unlabeled"), 2**20 + 1, "attention_vat.batch_unlabeled = 1048577: must be <= 1048576"),
    (("attention_vat", "fig2", "ratios", 1), 1e300, "attention_vat.fig2.ratios[1] = 1e+300: must be <= 1000000000"),
    (("aae_ssl", "style", "iterations"), 10**10, "aae_ssl.style.iterations = 10000000000: must be <= 1000000000"),
    (("aae_ssl", "style", "grid_step"), 1e-300, "aae_ssl.style.grid_step = 1e-300: must be >= 0.01"),
    (("split_vae", "grid", "size"), 10**23, "split_vae.grid.size = 100000000000000000000000: must be <= 1048576"),
    (("data", "har", "window"), 10**23, "data.har.window = 100000000000000000000000: must be <= 1048576"),
    (("data", "imdb", "random_state"), 2**32, "data.imdb.random_state = 4294967296: must be <= 2147483647"),
])
def test_absurd_sizes_and_counts_are_one_line_at_check(keys, value, message, in_tmp, capsys):
    """Through `replab check` on a params.yaml: nested sections, list elements, data sections, a float count."""
    params = compose()
    node = params
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value
    (in_tmp / "params.yaml").write_text(yaml.safe_dump(params))
    assert main(["check"]) == 2
    assert capsys.readouterr().err == f"error: params.yaml: {message}\n"


@pytest.mark.parametrize("profile", ["quick", "paper", "smoke"])
def test_profiles_sit_well_inside_the_size_and_count_bounds(profile):
    """The bounds are generous: every size and count of every profile is at most 1/100 of MAX_SIZE / MAX_COUNT."""
    from replab.params import MAX_COUNT, MAX_SIZE

    params = compose(f"profile={profile}")
    checked = 0
    for section, cls in _config_sections():
        for key, f in _int_fields(cls, section):
            if f.metadata.get("le") not in (MAX_SIZE, MAX_COUNT):
                continue
            value = params
            for part in key.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            for v in value if isinstance(value, list) else [value]:
                assert v is None or v * 100 <= f.metadata["le"], f"{profile}: {key} = {v}"
                checked += v is not None
    assert checked > 50


@pytest.mark.parametrize("overrides, message", [
    (["runtime.cuda_graph=maybe"], "error: compose runtime.cuda_graph=maybe: runtime.cuda_graph = 'maybe': must be "
                                   "true or false"),
    (["runtime.progress=false", "aae_ssl.seeds=[-1]"],
     "error: compose aae_ssl.seeds=[-1]: aae_ssl.seeds[0] = -1: must be >= 0"),
    (["aae_ssl=null"], "error: compose aae_ssl=null: aae_ssl must be a mapping, got null"),  # a whole section
    (["~aae_ssl"], "error: compose ~aae_ssl: section `aae_ssl` is missing (`replab compose` writes every section)"),
    (["datasets=[mnist]"], "error: compose datasets=[mnist]: aae_ssl.dataset = 'mnist5k': mnist5k is not in "
                           "`datasets` (no stage prepares it; add it there: now mnist)"),  # the key named second
    (["aae_ssl={lr: 1}", "aae_ssl.lr=-1"], "error: compose aae_ssl.lr=-1: aae_ssl.lr = -1.0: must be > 0.0"),
    (["aae_ssl.lr=-1", "aae_ssl.lr=-2"], "error: compose aae_ssl.lr=-2: aae_ssl.lr = -2.0: must be > 0.0"),  # kept
    (["aae_ssl.seeds.1=-2"], "error: compose aae_ssl.seeds.1=-2: aae_ssl.seeds[1] = -2: must be >= 0"),  # Hydra's
    (["runtime.threads=1", "+newsection.key=1"], None),  # a key below the section the message names
])
def test_compose_names_the_override_that_set_a_bad_value(overrides, message, in_tmp, capsys):
    """The value came from the command line, not from params.yaml (which is left as it was)."""
    import shutil

    shutil.copytree(REPO / "conf", in_tmp / "conf")
    before = (REPO / "params.yaml").read_text()
    (in_tmp / "params.yaml").write_text(before)
    assert main(["compose", *overrides]) == 2
    err = capsys.readouterr().err
    if message is None:  # the last override made the section the message starts with
        assert err.startswith(f"error: compose {overrides[-1]}: newsection"), err
    else:
        assert err == message + "\n"
    assert (in_tmp / "params.yaml").read_text() == before


def test_a_profile_or_params_yaml_that_is_no_file_is_refused_before_anything_reads_it(in_tmp, capsys):
    """A named pipe as conf/profile/mine.yaml hung check, compose and sweep; one as params.yaml hung `replab compare`
    inside DVC's read; a directory as mine.yaml was "no conf/profile/mine.yaml (known: mine, …)"."""
    import shutil

    shutil.copytree(REPO / "conf", in_tmp / "conf")
    (in_tmp / "params.yaml").write_text(yaml.safe_dump(compose()))
    mine = in_tmp / "conf" / "profile" / "mine.yaml"
    for make, kind in ((os.mkfifo, "a named pipe"), (os.mkdir, "a directory")):
        make(mine)
        for argv in (["check"], ["compose", "profile=mine"], ["sweep", "aae_ssl", "lambda_rec=1,2", "--dry-run"]):
            assert main(argv) == 2
            assert capsys.readouterr().err == (f"error: conf/profile/mine.yaml: is {kind}; allowed: a profile's YAML "
                                               "file\n"), argv
        os.rmdir(mine) if mine.is_dir() else mine.unlink()
    (in_tmp / "params.yaml").unlink()
    os.mkfifo(in_tmp / "params.yaml")
    assert main(["compare", "aae_ssl"]) == 2
    assert capsys.readouterr().err == "error: params.yaml: is a named pipe; allowed: a YAML file\n"


def test_compose_writes_through_a_linked_params_yaml(in_tmp, capsys):
    """params.yaml a link to a file elsewhere: compose said "rewritten" but replaced the link with a plain file and
    left the file it named unchanged."""
    import shutil

    shutil.copytree(REPO / "conf", in_tmp / "conf")
    (in_tmp / "shared").mkdir()
    (in_tmp / "shared" / "params.yaml").write_text(yaml.safe_dump(compose()))
    (in_tmp / "params.yaml").symlink_to(in_tmp / "shared" / "params.yaml")
    assert main(["compose", "aae_ssl.lambda_rec=5"]) == 0
    assert (in_tmp / "params.yaml").is_symlink()
    assert yaml.safe_load((in_tmp / "shared" / "params.yaml").read_text())["aae_ssl"]["lambda_rec"] == 5


def test_a_profile_file_must_name_itself(in_tmp, capsys):
    """quick.yaml copied to mine.yaml and edited composed mine's values labelled quick: `replab compose profile=mine`
    and `check` said ok, and `replab sweep --profile mine` queued `-S profile=quick`, whose runs trained quick's
    values. Every profile file is checked, by check (the check_params stage) and by compose, before Hydra reads it."""
    import shutil

    shutil.copytree(REPO / "conf", in_tmp / "conf")
    (in_tmp / "params.yaml").write_text(yaml.safe_dump(compose()))
    quick = (in_tmp / "conf" / "profile" / "quick.yaml").read_text()
    mine = in_tmp / "conf" / "profile" / "mine.yaml"
    header = ("its header must be `# @package _global_` (only blank lines before it), so that its keys are "
              "params.yaml's; Hydra reads")
    for text, message in (
            (quick, "meta.profile = 'quick': must be 'mine', the file's own"),
            (quick.replace("profile: quick", "profile: mine"),
             "meta.profile_file = 'conf/profile/quick.yaml': must be 'conf/profile/mine.yaml', the file's own"),
            (quick.partition("\n")[2], f"{header} no @package there"),
            # a comment first ends Hydra's header; a byte-order mark hides the line; Hydra refuses a bare @package
            ("# mine\n" + quick, f"{header} no @package there"),
            ("\ufeff" + quick, f"{header} no @package there; the file starts with a byte-order mark: save it as UTF-8 "
                               "without one"),
            ("# @package\n" + quick.partition("\n")[2],
             f"{header} a malformed header (Expected header format: KEY VALUE, got '@package') there"),
            ("# @package _global_\n", "meta.profile = null: must be 'mine', the file's own")):
        mine.write_text(text)
        for argv in (["check"], ["compose", "profile=mine"], ["compose"]):
            assert main(argv) == 2
            assert capsys.readouterr().err.startswith(f"error: conf/profile/mine.yaml: {message}")
        assert yaml.safe_load((in_tmp / "params.yaml").read_text()) == compose()  # as it was
    for header in ("\n\n#@package _global_", "#   @package   _global_"):  # Hydra reads these as _global_ too
        mine.write_text(header + "\n" + quick.replace("quick", "mine").partition("\n")[2])
        assert main(["check"]) == 0, header
    mine.write_text(quick.replace("quick", "mine"))
    assert main(["compose", "profile=mine"]) == 0
    assert yaml.safe_load((in_tmp / "params.yaml").read_text())["meta"] == {
        "profile": "mine", "profile_file": "conf/profile/mine.yaml"}


@pytest.mark.parametrize("name", ["1", "null", "a,b", "true"])
def test_a_profile_named_what_hydra_cannot_read_as_a_name_is_refused(name, in_tmp, capsys):
    """conf/profile/1.yaml (or null, a,b) passed check; compose then failed in Hydra's words ("Config group override
    must be a string or a list. Got int")."""
    import shutil

    shutil.copytree(REPO / "conf", in_tmp / "conf")
    (in_tmp / "params.yaml").write_text(yaml.safe_dump(compose()))
    quick = (in_tmp / "conf" / "profile" / "quick.yaml").read_text()
    (in_tmp / "conf" / "profile" / f"{name}.yaml").write_text(quick.replace("quick", name))
    assert main(["check"]) == 2
    assert capsys.readouterr().err == (f"error: conf/profile/{name}.yaml: `{name}` cannot name a profile "
                                       f"(`profile={name}` would not read as a name); allowed: a name such as mine or "
                                       "paper_gpu\n")


def test_compose_names_conf_for_a_bad_value_no_override_set(in_tmp, capsys):
    """Without overrides the value is conf/'s; with overrides none of which names the key, the message names them
    all and claims no source (an override can reach the key through an interpolation)."""
    import shutil

    shutil.copytree(REPO / "conf", in_tmp / "conf")
    quick = in_tmp / "conf" / "profile" / "quick.yaml"
    quick.write_text(quick.read_text() + "\nruntime:\n  threads: -3\n")
    assert main(["compose"]) == 2
    assert capsys.readouterr().err.startswith("error: compose: from conf/: runtime.threads = -3: ")
    assert main(["compose", "runtime.progress=false", "aae_ssl.lr=0.5"]) == 2
    assert capsys.readouterr().err.startswith("error: compose runtime.progress=false aae_ssl.lr=0.5: "
                                              "runtime.threads = -3: ")


def test_check_data_out_of_memory_names_the_papers_section(monkeypatch):
    """`dvc exp run -S attention_vat.embedding_dim=1048576`: check_data's allocation failed and its one line named
    no section ("the sizes in params.yaml"), where the training stage names the paper's."""
    from replab import papers

    def too_large(cfg):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 32258392064 bytes. Error code 12 (Cannot allocate memory)")

    monkeypatch.setattr(papers.paper_module("attention_vat"), "check_data", too_large)
    for paper in papers.PAPERS:  # (the others' checks need prepared data: not what this is about)
        if paper != "attention_vat":
            monkeypatch.setattr(papers.paper_module(paper), "check_data", lambda cfg: None)
    with pytest.raises(ParamError) as err:
        papers.check_data(compose())
    assert str(err.value) == ("out of memory (tried to allocate 32258392064 bytes): params.yaml's attention_vat sizes "
                              "(batch sizes, hidden and embedding sizes, data set sizes) are too large for this "
                              "device's memory")
    monkeypatch.setattr(papers.paper_module("attention_vat"), "check_data", lambda cfg: 1 / 0)
    with pytest.raises(ZeroDivisionError):  # any other error is no memory matter: its traceback
        papers.check_data(compose())
