"""The analysis contract: typed configs, claims with verdict rules, CLI --set/--config,
`interp rerun`, every analysis's claims table, and the generated report."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from interp.claims import (
    FAILS,
    INCONCLUSIVE,
    NOT_TESTED,
    PARTLY,
    REPRODUCES,
    Claim,
    ClaimError,
    Evidence,
    above,
    beats_control,
    bootstrap_ci,
    claims_table,
)
from interp.cli import main
from interp.config import AnalysisConfig, ConfigError, option
from interp.experiments import EXPERIMENTS, get_experiment

ROOT = Path(__file__).resolve().parents[2]

# the claim ids the contract fixes (issue 14, point 5); analyses may add more
REQUIRED_CLAIMS = {
    "ioi-reuse": ["wang2022." + c for c in ("ioi_accuracy", "logit_diff", "faithfulness", "completeness", "minimality",
                                            "name_movers_attend_io", "backup_name_movers")]
    + ["merullo2023." + c for c in ("cobj_accuracy", "overlap_top2pct", "intervention")],
    "talking-heads": ["merullo2024." + c for c in ("weights_predict_channels", "low_rank_inhibition",
                                                  "laundry_accuracy_falls", "laundry_list_edit")],
    "obsprop": ["dunefsky2023." + c for c in ("norm_insensitive", "importance_vs_patching", "pronoun_features_parallel",
                                             "occupation_uses_gender_feature", "data_efficiency")],
    "embedding-space": ["dar2023." + c for c in ("key_value_share_tokens", "param_vs_hidden_agree",
                                                "transpose_approximates_pinv", "cross_model_alignment")],
    "factual-recall": ["lv2024." + c for c in ("argument_heads", "mlp_amplify_erase", "function_application",
                                              "anti_overconfidence")],
    "bigram-subnetworks": ["chang2025." + c for c in ("size", "first_mlp", "function", "necessity", "sufficiency",
                                                     "overlap_optimal_pruning", "first_layer_transformation")],
    "attention-atlas": ["yeh2023." + c for c in ("distance_tracks_attention", "head_types_visible")],
    "sanity": ["sanity.ioi_solved", "sanity.induction"],
}


# ---------------------------------------------------------------------- configs
@dataclass(frozen=True, kw_only=True)
class _Cfg(AnalysisConfig):
    QUICK = {"n": 3}
    n: int = option(10, "a size", ge=1)
    lr: float = option(0.1, "a rate", ge=0.0)
    mode: str = option("a", "a mode", choices=("a", "b"))
    layers: tuple[int, ...] = option((0, 1), "layers")
    path: str | None = option(None, "optional path")


def test_config_validates_types_ranges_choices_and_keys():
    assert _Cfg.quick_preset().n == 3 and _Cfg.full_preset().n == 10 and _Cfg.quick_preset().quick
    assert _Cfg(lr=1).lr == 1.0 and isinstance(_Cfg(lr=1).lr, float)  # ints are numbers
    for bad, match in (({"n": 0}, "n must be >= 1"), ({"n": 1.5}, "n expects an integer"), ({"n": True}, "n expects an integer"),
                       ({"mode": "c"}, "mode must be one of"), ({"layers": 3}, "layers expects a list"),
                       ({"seed": -1}, "seed must be >= 0")):
        with pytest.raises(ConfigError, match=match):
            _Cfg.from_dict(bad)
    with pytest.raises(ConfigError, match=r"unknown key 'nn'.*known keys: quick, seed, n, lr, mode, layers, path"):
        _Cfg.from_dict({"nn": 3})
    with pytest.raises(ConfigError, match="unknown key 'x'"):
        _Cfg().replace(x=1)


def test_config_set_and_toml(tmp_path):
    cfg = _Cfg().with_assignments(["n=5", "lr=2e-3", "mode=b", "layers=[2, 3]", "path=none", "quick=true"])
    assert (cfg.n, cfg.lr, cfg.mode, cfg.layers, cfg.path, cfg.quick) == (5, 2e-3, "b", (2, 3), None, True)
    assert _Cfg.from_dict(cfg.to_dict()) == cfg  # round trip through plain values
    f = tmp_path / "c.toml"
    f.write_text('n = 7\nlayers = [4]\n')
    assert _Cfg().with_toml(f).layers == (4,)
    f.write_text('nope = 1\n')
    with pytest.raises(ConfigError, match=f"unknown key 'nope' in {f}"):
        _Cfg().with_toml(f)
    with pytest.raises(ConfigError, match="n expects int"):
        _Cfg().with_assignments(["n=abc"])
    with pytest.raises(ConfigError, match="key=value"):
        _Cfg().with_assignments(["n"])
    with pytest.raises(TypeError):
        option([1], "mutable default")
    assert "n" in _Cfg.help_text() and "3 / 10" in _Cfg.help_text()


@pytest.mark.parametrize("name", [n for n in EXPERIMENTS])
def test_every_analysis_config_rejects_unknown_and_bad_values(name):
    cls = get_experiment(name).config_class
    assert issubclass(cls, AnalysisConfig)
    known = cls.known_keys()
    with pytest.raises(ConfigError, match=r"unknown key 'no_such_key'.*known keys: " + ", ".join(known[:3])):
        get_experiment(name).config(assignments=["no_such_key=1"])
    with pytest.raises(ConfigError, match="seed"):
        get_experiment(name).config(assignments=["seed=minus one"])
    q, f = cls.quick_preset(), cls.full_preset()
    assert q.quick and not f.quick
    assert cls.from_dict(f.to_dict()) == f
    for field_name, _typ, _default, doc in cls.describe():
        assert doc, f"{name}: field {field_name} has no documentation"


# ---------------------------------------------------------------------- claims
def _claim(rule=beats_control(), min_n=5):
    return Claim(id="x.y", paper="x", paper_model="m", paper_value="1", statement="s", statistic="t", control="c",
                 rule=rule, rule_text="r", min_n=min_n, departures=("fixed departure",))


def test_verdict_rules_and_guards():
    c = _claim()
    assert c.evaluate(Evidence(value=1.0, ci_low=0.8, ci_high=1.2, control_value=0.5, n=10))["verdict"] == REPRODUCES
    assert c.evaluate(Evidence(value=0.2, ci_low=0.1, ci_high=0.4, control_value=0.5, n=10))["verdict"] == FAILS
    assert c.evaluate(Evidence(value=0.6, ci_low=0.4, ci_high=0.8, control_value=0.5, n=10))["verdict"] == INCONCLUSIVE
    # no control: never decided
    row = _claim(rule=above(0.5)).evaluate(Evidence(value=1.0, ci_low=0.9, ci_high=1.1, n=10))
    assert row["verdict"] == INCONCLUSIVE and "no control" in row["departures"]
    # small sample
    row = c.evaluate(Evidence(value=1.0, ci_low=0.8, ci_high=1.2, control_value=0.5, n=3))
    assert row["verdict"] == INCONCLUSIVE and "below the claim's minimum" in row["departures"]
    # quick mode never decides
    row = c.evaluate(Evidence(value=1.0, ci_low=0.8, ci_high=1.2, control_value=0.5, n=10), quick=True)
    assert row["verdict"] == INCONCLUSIVE and "quick mode" in row["departures"] and "fixed departure" in row["departures"]
    # not tested carries its reason
    row = c.evaluate(Evidence(not_tested="model lacks X"))
    assert row["verdict"] == NOT_TESTED and "model lacks X" in row["departures"]
    # partly band
    r = above(0.8, partly=0.3)
    assert r(Evidence(value=0.5, ci_low=0.4, ci_high=0.6)) == PARTLY
    assert r(Evidence(value=0.9, ci_low=0.85, ci_high=0.95)) == REPRODUCES
    assert r(Evidence(value=0.1, ci_low=0.0, ci_high=0.2)) == FAILS


def test_claims_table_lists_every_declared_claim_and_rejects_unknown_evidence():
    a, b = _claim(), Claim(**{**_claim().__dict__, "id": "x.z"})
    t = claims_table([a, b], {"x.y": Evidence(value=1.0, ci_low=0.9, ci_high=1.1, control_value=0.0, n=9)}, quick=False)
    assert list(t["claim_id"]) == ["x.y", "x.z"] and list(t["verdict"]) == [REPRODUCES, NOT_TESTED]
    with pytest.raises(ClaimError, match="undeclared"):
        claims_table([a], {"x.typo": Evidence()}, quick=False)


def test_bootstrap_ci_matches_the_normal_approximation():
    x = np.random.default_rng(0).normal(2.0, 1.0, 400)
    v, lo, hi, n = bootstrap_ci(x, seed=1)
    se = x.std(ddof=1) / math.sqrt(len(x))
    assert n == 400 and v == pytest.approx(x.mean())
    assert lo == pytest.approx(x.mean() - 1.96 * se, abs=0.25 * se)
    assert hi == pytest.approx(x.mean() + 1.96 * se, abs=0.25 * se)
    assert bootstrap_ci([1.0])[1:3] != bootstrap_ci([1.0])[1:3]  # NaN interval for n < 2
    assert bootstrap_ci([np.nan, 1.0, 3.0])[3] == 2


# ---------------------------------------------------------------------- CLI
def _only_run(folder: Path) -> Path:
    runs = [p for p in folder.iterdir() if not p.name.startswith(".")]
    assert len(runs) == 1, runs
    return runs[0]


def test_cli_set_and_config_round_trip_into_the_manifest(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text("n_ioi = 12\ninduction_half_len = 8\n")
    out = tmp_path / "runs"
    assert main(["run", "sanity", "--model", "tiny-gpt2", "--quick", "--config", str(cfg), "--set", "induction_half_len=6",
                 "--seed", "3", "--quiet", "--out", str(out)]) == 0
    manifest = json.loads((_only_run(out) / "manifest.json").read_text())
    assert manifest["config"]["n_ioi"] == 12 and manifest["config"]["induction_half_len"] == 6
    assert manifest["config"]["seed"] == 3 and manifest["config"]["quick"] is True
    assert manifest["runtime"]["torch_threads"] >= 1 and manifest["runtime"]["device"] == "cpu"
    assert manifest["runtime"]["dtype"] == "float32"
    import resource

    peak = manifest["meta"]["peak_rss_gb"]  # this process's high-water mark when the run ended
    assert 0 < peak <= resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9 + 1e-3
    text = capsys.readouterr().out
    assert "IO > S on" in text and "sanity.ioi_solved" in text  # findings and claims printed


def test_cli_config_errors_name_the_key(tmp_path, capsys):
    assert main(["run", "sanity", "--model", "tiny-gpt2", "--set", "n_iio=3", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'n_iio'" in err and "n_ioi" in err
    assert main(["run", "sanity", "--model", "tiny-gpt2", "--set", "n_ioi=-4", "--out", str(tmp_path)]) == 2
    assert "n_ioi must be >= 2" in capsys.readouterr().err
    assert main(["run", "sanity", "--model", "tiny-gpt2", "--prompts", str(tmp_path / "none.jsonl"), "--out", str(tmp_path)]) == 2
    assert "no such file" in capsys.readouterr().err
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["run", "sanity", "--model", "tiny-gpt2", "--quick", "--out", str(f / "sub")]) == 2
    assert "is a file" in capsys.readouterr().err
    assert not any(p.name.startswith("sanity") for p in tmp_path.iterdir())


def test_cli_run_help_lists_every_field(capsys):
    assert main(["run", "sanity", "--help"]) == 0
    out = capsys.readouterr().out
    for name, *_ in get_experiment("sanity").config_class.describe():
        assert name in out
    assert "IOI prompts for the logit difference" in out


def test_rerun_reproduces_a_quick_run_exactly(tmp_path):
    from interp.results import load_run

    first, second = tmp_path / "a", tmp_path / "b"
    assert main(["run", "sanity", "--model", "tiny-gpt2", "--quick", "--set", "n_ioi=8", "--quiet", "--out", str(first)]) == 0
    assert main(["rerun", str(_only_run(first)), "--quiet", "--out", str(second)]) == 0
    a, b = load_run(_only_run(first)), load_run(_only_run(second))
    assert a.config == b.config and a.metrics == b.metrics
    assert a.tables["claims"].equals(b.tables["claims"])


def test_report_renders_runs_and_reference_copies(tmp_path):
    from interp.report import collect, render, save_reference

    out = tmp_path / "runs"
    assert main(["run", "sanity", "--model", "tiny-gpt2", "--quick", "--quiet", "--out", str(out)]) == 0
    run = _only_run(out)
    ref = save_reference(run, tmp_path / "ref")
    assert sorted(p.name for p in ref.iterdir()) == ["claims.json", "manifest.json"]
    full, copy = render(collect([out])), render(collect([tmp_path / "ref"]))
    assert full.replace(str(out), "X") == copy.replace(str(tmp_path / "ref"), "X")  # same report from the reference copy
    assert "`sanity.ioi_solved`" in full and "interp run sanity --model tiny-gpt2 --quick" in full
    assert "**inconclusive**" in full  # quick runs never decide


@dataclass(frozen=True, kw_only=True)
class _CfgV2(_Cfg):
    wait: bool = option(True, "an option added later; runs saved before it behaved as False", absent=False)


def test_from_saved_sets_derived_keys_aside_and_fills_options_added_since():
    saved = {**_Cfg().to_dict(), "n": 4, "layers_used": [0, 1]}  # a run stores derived values next to its config
    with pytest.raises(ConfigError, match="unknown key 'layers_used'"):
        _CfgV2.from_dict(saved)
    cfg, derived = _CfgV2.from_saved(saved)
    assert derived == ["layers_used"] and cfg.n == 4 and cfg.wait is False  # what the old run did
    assert _CfgV2.from_saved({**saved, "wait": True})[0].wait is True
    assert _CfgV2().wait is True and _CfgV2.saved_fallbacks() == {"wait": False}


def test_every_quick_run_is_rebuilt_from_its_manifest(app_runs):
    """`interp rerun` rebuilds each analysis's config from the manifest it saved (regression: runs
    that store derived values in their config, like bigram-subnetworks, could not be re-run)."""
    from interp.results import load_run

    runs, _ = app_runs
    seen = set()
    for d in sorted(p for p in runs.iterdir() if (p / "manifest.json").is_file()):
        manifest = json.loads((d / "manifest.json").read_text())
        exp = get_experiment(manifest["experiment"])
        cfg, _derived = exp.config_class.from_saved(manifest["config"], where=str(d))
        stored = load_run(d).config
        assert {k: v for k, v in cfg.to_dict().items() if k in stored} == {
            k: (list(v) if isinstance(v, tuple) else v) for k, v in stored.items() if k in cfg.to_dict()}
        seen.add(manifest["experiment"])
    assert "bigram-subnetworks" in seen


def test_report_names_a_small_lm_by_its_cache_place_and_training_command():
    from interp.models.small_lm import SEED_PAIR_SETTINGS, _settings, default_name
    from interp.report import RunRecord

    rest = {k: v for k, v in SEED_PAIR_SETTINGS.items() if k != "arch"}
    name = default_name(_settings(SEED_PAIR_SETTINGS["arch"], 1, rest)[1])
    manifest = {"experiment": "sanity", "config": {}, "model": {"id": f"/some/machine/cache/small_lms/{name}"}}
    cmd = RunRecord("r", manifest, None).command()
    assert f"--model ~/.cache/interp/small_lms/{name}" in cmd and "/some/machine" not in cmd
    from interp.report import _training_command

    assert _training_command(manifest["model"]["id"]) == "python experiments/train_small_lm.py --preset seed-pair --seed 1"
    assert _training_command("/c/small_lms/" + name.replace("-d128-", "-d64-")) is None  # not the preset's settings
    assert _training_command("smollm2-135m") is None


def test_committed_report_is_generated_from_committed_runs():
    """docs/REPRODUCTION.md must equal what `interp report docs/runs` makes of docs/runs."""
    from interp.report import collect, render

    runs = ROOT / "docs" / "runs"
    expected = render(collect([runs]), ROOT / "docs" / "notes", sources="docs/runs")
    assert (ROOT / "docs" / "REPRODUCTION.md").read_text() == expected, "regenerate: interp report docs/runs -o docs/REPRODUCTION.md"


# ---------------------------------------------------------------------- every analysis
def test_every_quick_run_has_the_contract_claims(app_runs):
    """Quick runs of every analysis on tiny-llama (the app tests' cached runs) carry claims tables
    with the contract's ids; `not tested` only with a reason."""
    from interp.results import list_runs, load_run

    runs_dir, failed = app_runs
    assert not failed, failed
    by_exp = {m["experiment"]: load_run(m["path"]) for m in list_runs(runs_dir)}
    for name, ids in REQUIRED_CLAIMS.items():
        assert name in by_exp, f"no quick run of {name}"
        claims = by_exp[name].tables["claims"]
        assert set(ids) <= set(claims["claim_id"]), (name, set(ids) - set(claims["claim_id"]))
        for _, row in claims.iterrows():
            assert row.verdict in (INCONCLUSIVE, NOT_TESTED), (name, row.claim_id, row.verdict)  # quick: no verdicts
            if row.verdict == NOT_TESTED:
                assert "not tested:" in row.departures, (name, row.claim_id)


def test_weight_based_runs_on_post_norm_models_say_so(tiny_gpt2):
    """A model with post-attention norms (Gemma 2/3) gets the departure on weight-based claims."""
    import pandas as pd

    from interp.experiments import POST_NORM_DEPARTURE, _add_departure, has_post_norms
    from interp.results import Result

    assert not has_post_norms(tiny_gpt2)
    r = Result(experiment="x", tables={"claims": pd.DataFrame({"departures": ["", "a"]})})
    _add_departure(r, POST_NORM_DEPARTURE)
    assert list(r.tables["claims"]["departures"]) == [POST_NORM_DEPARTURE, "a; " + POST_NORM_DEPARTURE]


def test_documented_commands_use_real_config_keys():
    """Every `interp run X ... --set k=v` written in the README and the docs parses with X's config."""
    import re
    import shlex

    texts = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "docs" / "notes").glob("*.md"))]
    seen = 0
    for path in texts:
        for cmd in re.findall(r"interp run ([a-z-]+[^`\n]*)", path.read_text()):
            words = shlex.split(cmd.split("#")[0].replace("\\", " "))
            name, sets = words[0], [words[i + 1] for i, w in enumerate(words[:-1]) if w == "--set"]
            if name not in EXPERIMENTS or not sets:
                continue
            get_experiment(name).config(quick="--quick" in words, assignments=sets)  # raises ConfigError naming the key
            seen += 1
    assert seen >= 3
