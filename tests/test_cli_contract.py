"""Command-line contract: exact flags, one default per setting, numerical failure is exit 1."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import scipy.io

from distgp.cli import build_parser, main


def all_parsers(parser: argparse.ArgumentParser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from all_parsers(sub)


def test_every_parser_refuses_abbreviations():
    parsers = list(all_parsers(build_parser()))
    assert len(parsers) >= 5  # distgp, fit, predict, optimize, bench and its suites
    assert all(p.allow_abbrev is False for p in parsers)


@pytest.mark.parametrize(
    "argv",
    [
        ["fit", "--test-frac", "0.2"],  # a prefix of --test-fraction
        ["fit", "--shar", "random"],  # of --shard
        ["fit", "--max-iter", "5"],  # of --max-iterations
        ["fit", "--local", "3"],  # of --local-iterations
        ["optimize", "--budg", "10"],  # of --budget
        ["bench", "kernel", "--dataset", "ale80"],  # of --datasets
    ],
)
def test_flag_prefixes_are_refused(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    command = " ".join(
        a for a in argv if not a.startswith("-") and a in ("fit", "optimize", "bench", "kernel")
    )
    assert len(err) == 1 and err[0].startswith(f"distgp {command}: error: unrecognized arguments: ")
    assert err[0].endswith(f"(see 'distgp {command} --help')")


def test_progress_is_best_effort(data_dir, tmp_path):
    """Progress goes to stderr; a closed pipe there (``distgp fit ... 2>&1 | head -2``) or a
    closed stderr does not stop the run or its outputs."""
    command = [sys.executable, "-m", "distgp", "fit", "--data", str(data_dir / "ale80.mat")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [*command, "--out", str(tmp_path / "piped"), "--no-plots"],
        stderr=subprocess.PIPE,
        env=env,
    )
    proc.stderr.close()  # the reader went away before the first line
    assert proc.wait(timeout=120) == 0
    closed = subprocess.run(
        [*command, "--out", str(tmp_path / "closed"), "--no-plots"],
        env=env,
        timeout=120,
        stderr=None,
        preexec_fn=lambda: os.close(2),
    )
    assert closed.returncode == 0
    for run in ("piped", "closed"):
        assert (tmp_path / run / "metrics.json").is_file() and (
            tmp_path / run / "model.npz"
        ).is_file()


def help_entry(help_text: str, flag: str) -> str:
    entry = re.search(r"^  " + re.escape(flag) + r"(?= )[^\n]*(?:\n {20,}[^\n]*)*", help_text, re.M)
    assert entry, f"{flag} is not in the --help text"
    return " ".join(entry.group(0).split())


def command_help(command: str, capsys) -> str:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    return capsys.readouterr().out


@pytest.mark.parametrize("command", ["fit", "optimize"])
def test_every_flag_is_a_setting_with_its_default_and_help(command, capsys):
    """The flags come from the settings: each shows the setting's help and default."""
    from distgp.bandit.config import OptimizeConfig
    from distgp.config import FitConfig
    from distgp.settings import entries

    cls = FitConfig if command == "fit" else OptimizeConfig
    help_text = command_help(command, capsys)
    parser = next(p for p in all_parsers(build_parser()) if p.prog.endswith(command))
    table = parser.get_default("flag_table")
    flagged = [e for e in entries(cls) if e.spec.flag != ""]
    assert len(flagged) >= 15
    for e in flagged:
        flag = table.flag_of(e.path)
        text = help_entry(help_text, flag)
        assert " ".join(e.spec.help.split())[:40] in text, flag
        shown = e.describe_default()
        if shown is not None:
            assert f"(default {shown})" in text, flag


def test_defaults_agree_between_config_estimator_driver_and_agents():
    """One default per setting: the estimator, the driver's agent settings and the algorithm
    classes take theirs from the config classes."""
    from distgp import GSMPRegressor
    from distgp.agents.agent import AgentSettings
    from distgp.config import FitConfig
    from distgp.consensus.admm import ADMMOptions
    from distgp.driver import agent_settings
    from distgp.estimator import PARAMETERS
    from distgp.learn.dsca import DSCAOptions
    from distgp.settings import entry, get

    config = FitConfig()
    signature = inspect.signature(GSMPRegressor).parameters
    assert set(PARAMETERS) == set(signature) - {"random_state", "warm_start"}
    for parameter, path in PARAMETERS.items():
        assert signature[parameter].default == entry(FitConfig, path).default, parameter
    assert signature["random_state"].default == config.seed
    settings = agent_settings(config)  # what the driver sends the agents
    sent = {
        "learn.max_iterations": settings.dsca.max_iterations,
        "learn.tol": settings.dsca.tol,
        "learn.kkt_tol": settings.dsca.kkt_tol,
        "learn.blocks": settings.dsca.blocks,
        "learn.prune_tol": settings.dsca.prune_tol,
        "learn.inner_iterations": settings.inner_iterations,
        "consensus.local_iterations": settings.local_iterations,
        "learn.noise_floor": settings.noise_floor,
    }
    for path, value in sent.items():
        assert value == get(config, path), path
    agent_default = {f.name: f.default for f in dataclasses.fields(AgentSettings)}
    assert agent_default["local_iterations"] == config.consensus.local_iterations
    assert agent_default["inner_iterations"] == config.learn.inner_iterations
    dsca = DSCAOptions()
    for name in ("max_iterations", "tol", "kkt_tol", "blocks", "prune_tol"):
        assert getattr(dsca, name) == getattr(config.learn, name), name
    admm = ADMMOptions()
    for name in ("max_rounds", "abs_tol", "rel_tol", "rho"):
        assert getattr(admm, name) == getattr(config.consensus, name), name


@pytest.mark.parametrize(
    ("make", "setting", "parameter"),
    [
        (
            lambda: __import__("distgp").GSMPRegressor(local_iterations=0),
            "consensus.local_iterations",
            "local_iterations",
        ),
        (lambda: __import__("distgp").GSMPRegressor(blocks=0), "learn.blocks", "blocks"),
    ],
)
def test_errors_name_the_setting_the_parameter_and_the_flag(make, setting, parameter, tmp_path):
    """The library names the estimator's parameter; the command line adds the flag."""
    from distgp.config import FitConfig
    from distgp.exceptions import ConfigError
    from distgp.learn.dsca import DSCAOptions

    with pytest.raises(ConfigError, match=rf"^{parameter} must be at least 1, got 0$") as exc:
        make()._config()
    assert exc.value.setting == setting
    config = FitConfig()
    config.learn.blocks = 0
    with pytest.raises(ConfigError, match=r"^learn.blocks must be at least 1, got 0$"):
        config.validate()
    with pytest.raises(ConfigError, match=r"^learn.blocks must be at least 1"):
        DSCAOptions(blocks=0)  # the algorithm class runs the same check
    config.learn.blocks = "2"  # a value of the wrong type, set from Python
    with pytest.raises(ConfigError, match=r"^learn.blocks must be a whole number, got '2'$"):
        config.validate()


def test_cli_error_names_setting_and_flag(capsys, tmp_path):
    code = main(["fit", "--blocks", "0", "--quiet", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == "distgp fit: error: learn.blocks must be at least 1, got 0 (flag --blocks)"
    config = tmp_path / "c.yaml"
    config.write_text("learn:\n  blocks: 0\n")
    code = main(["fit", "--config", str(config), "--quiet", "--out", str(tmp_path / "o")])
    assert code == 2  # the same check, whether the value came from a flag or the file
    assert "learn.blocks must be at least 1, got 0" in capsys.readouterr().err


def test_optimize_switches_and_renamed_flags_set_their_settings():
    from distgp.cli.optimize import _config

    parser = build_parser()
    args = parser.parse_args(["optimize", "--batch", "--maximize", "--noise", "0.5", "--arms", "9"])
    config = _config(args)
    assert config.bandit.batch and config.maximize
    assert config.noise_std == 0.5 and config.arms.count == 9
    args = parser.parse_args(["fit", "--no-quantize", "--rounds", "7", "--tune", "4"])
    from distgp.cli.fit import _config as fit_config

    config = fit_config(args)
    assert not config.consensus.quantize
    assert config.consensus.max_rounds == 7 and config.tune.budget == 4


def test_true_false_settings_of_a_config_file_can_be_undone_by_flags(tmp_path, capsys):
    from distgp.cli.optimize import _config

    path = tmp_path / "on.yaml"
    path.write_text("function: m:f\nmaximize: true\nplots: false\nbandit: {batch: true}\n")
    parser = build_parser()
    config = _config(parser.parse_args(["optimize", "--config", str(path)]))
    assert config.maximize and config.bandit.batch and not config.plots
    argv = ["optimize", "--config", str(path), "--no-maximize", "--no-batch", "--plots"]
    config = _config(parser.parse_args(argv))
    assert not config.maximize and not config.bandit.batch and config.plots
    config = _config(parser.parse_args(["optimize", "--no-plots", "--plots", "--batch"]))
    assert config.plots and config.bandit.batch  # the last one given wins
    assert main(["optimize", "--resume", str(tmp_path), "--no-batch"]) == 2
    assert "drop --no-batch" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["optimize", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--no-plots draw no regret.png (plots: false;" in help_text
    assert "--plots set plots back to true, over a --config file" in help_text


@pytest.mark.parametrize("where", ["flag", "config"])
def test_maximize_is_refused_on_a_built_in_function(tmp_path, capsys, where):
    out = tmp_path / "out"
    argv = ["optimize", "--function", "hartmann6", "--out", str(out)]
    if where == "flag":
        argv.append("--maximize")
    else:
        (tmp_path / "c.yaml").write_text("maximize: true\n")
        argv += ["--config", str(tmp_path / "c.yaml")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and not out.exists()
    assert (
        "error: the built-in function hartmann6 is minimised (its known optimum gives the " in err
    )
    fix = "drop --maximize" if where == "flag" else "drop maximize: true from the config (or pass"
    assert f"regret); {fix}" in err and "or give a MODULE:CALLABLE to maximise\n" in err
    assert ("--no-maximize" in err) == (where == "config")


def test_numerical_failure_is_exit_1_with_one_line(tmp_path, capsys, monkeypatch):
    x = np.arange(1.0, 41.0)[:, None]
    y = np.sin(x[:, 0] / 3.0)
    data = tmp_path / "series.mat"
    scipy.io.savemat(
        data, {"xtrain": x[:30], "ytrain": y[:30, None], "xtest": x[30:], "ytest": y[30:, None]}
    )

    def indefinite(a, *args, **kwargs):  # LAPACK's answer for a matrix that is not PD
        return a, 1

    monkeypatch.setattr("distgp.kernels.compute.scipy.linalg.lapack.dpotrf", indefinite)
    out = tmp_path / "out"
    code = main(["fit", "--data", str(data), "--quiet", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and "not positive definite" in err[0] and "noise_floor" in err[0]
