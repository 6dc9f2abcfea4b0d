"""Command-line contract: exact flags, one default per setting, numerical failure is exit 1."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re

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
    ],
)
def test_flag_prefixes_are_refused(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"unrecognized arguments: {argv[1]}" in err[0]


# fit flag -> (config section.key, GSMPRegressor parameter)
SETTINGS = {
    "--max-iterations": ("learn.max_iterations", "max_iterations"),
    "--local-iterations": ("consensus.local_iterations", "local_iterations"),
    "--blocks": ("learn.blocks", "blocks"),
    "--noise-floor": ("learn.noise_floor", "noise_floor"),
    "--rounds": ("consensus.max_rounds", "rounds"),
    "--bits": ("consensus.bits", "bits"),
    "--agents": ("consensus.agents", "agents"),
}


def help_default(help_text: str, flag: str) -> float:
    entry = re.search(r"^  " + re.escape(flag) + r"\b[^\n]*(?:\n {20,}[^\n]*)*", help_text, re.M)
    assert entry, f"{flag} is not in 'distgp fit --help'"
    found = re.search(r"\(default ([0-9.e+-]+)\)", " ".join(entry.group(0).split()))
    assert found, f"{flag}: no '(default N)' in its help"
    return float(found.group(1))


def test_defaults_agree_between_cli_config_estimator_and_driver(capsys):
    from distgp import GSMPRegressor
    from distgp.agents.agent import AgentSettings
    from distgp.config import FitConfig
    from distgp.driver import agent_settings
    from distgp.learn.dsca import DSCAOptions

    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    help_text = capsys.readouterr().out
    config = FitConfig()
    estimator = {name: p.default for name, p in inspect.signature(GSMPRegressor).parameters.items()}
    for flag, (dotted, param) in SETTINGS.items():
        section, key = dotted.split(".")
        value = getattr(getattr(config, section), key)
        assert help_default(help_text, flag) == value, flag
        assert estimator[param] == value, param
    settings = agent_settings(FitConfig())  # what the driver sends the agents
    assert settings.dsca.max_iterations == config.learn.max_iterations
    assert settings.local_iterations == config.consensus.local_iterations
    agent_default = {f.name: f.default for f in dataclasses.fields(AgentSettings)}
    assert agent_default["local_iterations"] == config.consensus.local_iterations
    assert DSCAOptions().max_iterations == config.learn.max_iterations


def test_numerical_failure_is_exit_1_with_one_line(tmp_path, capsys, monkeypatch):
    x = np.arange(1.0, 41.0)[:, None]
    y = np.sin(x[:, 0] / 3.0)
    data = tmp_path / "series.mat"
    scipy.io.savemat(
        data, {"xtrain": x[:30], "ytrain": y[:30, None], "xtest": x[30:], "ytest": y[30:, None]}
    )

    def indefinite(*args, **kwargs):
        raise np.linalg.LinAlgError("not positive definite")

    monkeypatch.setattr("distgp.kernels.compute.scipy.linalg.cholesky", indefinite)
    out = tmp_path / "out"
    code = main(["fit", "--data", str(data), "--quiet", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and "not positive definite" in err[0] and "noise_floor" in err[0]
