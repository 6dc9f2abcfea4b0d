"""A numerically singular covariance (noiseless data with a tiny, legal noise floor) is handled:
the fit completes with an accurate model and the objective never goes up; the CLI prints every
Python warning as one line, a repeated one once per run (audit 10, findings 2 and 4)."""

from __future__ import annotations

import contextlib
import io
import sys
import warnings

import numpy as np
import pytest

from distgp import GSMPRegressor
from distgp.cli import main
from distgp.cli.common import WarningLines
from distgp.exceptions import NumericsWarning
from distgp.learn.dsca import scaled_gradient

dsca_module = sys.modules["distgp.learn.dsca"]  # the module, not the function it exports


def noiseless(n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    x = np.sort(np.random.default_rng(0).uniform(0, 10, n))
    return x[:, None], np.sin(x)


def run_cli(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    return code, err.getvalue()


def write_csv(path, columns: dict[str, np.ndarray]) -> str:
    names = list(columns)
    rows = np.column_stack([columns[k] for k in names])
    np.savetxt(path, rows, delimiter=",", header=",".join(names), comments="", fmt="%.17g")
    return str(path)


def test_a_trace_lost_to_rounding_scales_to_zero_without_a_warning():
    grad = np.array([0.5, -2.0, 3.0, 1.0])
    traces = np.array([2.0, -0.0078125, 0.0, 4.0])  # as the explicit inverse gave them
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scaled = scaled_gradient(grad, traces)
    assert scaled.tolist() == [0.25, 0.0, 0.0, 0.25]
    resolved = np.array([3.0, 0.5])
    assert np.array_equal(scaled_gradient(grad[:2], resolved), grad[:2] / resolved)  # bit for bit


@pytest.mark.parametrize("floor", [1e-12, 1e-15])
def test_noiseless_data_with_a_tiny_noise_floor_fits_accurately(floor, monkeypatch):
    X, y = noiseless()
    histories = []
    solve = dsca_module._dsca

    def recording(*args, **kwargs):
        result = solve(*args, **kwargs)
        histories.append(np.asarray(result.history))
        return result

    monkeypatch.setattr(dsca_module, "_dsca", recording)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("default")
        model = GSMPRegressor(noise_floor=floor).fit(X, y)
    grid = np.linspace(0.2, 9.8, 100)
    mean = model.predict(grid[:, None])
    assert np.max(np.abs(mean - np.sin(grid))) < 1e-4  # about 1e-7 here
    for h in histories:  # the objective never goes up
        assert np.all(np.diff(h) <= 1e-12 * np.abs(h[:-1]))
    numeric = [w for w in seen if issubclass(w.category, NumericsWarning)]
    assert len(numeric) == 1  # once, however many iterates and fits meet it
    assert "numerically singular at noise floor" in str(numeric[0].message)
    assert "--noise-floor" in str(numeric[0].message)
    assert numeric == [w for w in seen if issubclass(w.category, RuntimeWarning)]


def test_the_admm_path_fits_noiseless_data_with_a_tiny_noise_floor():
    X, y = noiseless()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("default")
        model = GSMPRegressor(noise_floor=1e-12, agents=2, backend="inline").fit(X, y)
    grid = np.linspace(0.2, 9.8, 100)
    assert np.max(np.abs(model.predict(grid[:, None]) - np.sin(grid))) < 1e-3
    numeric = [w for w in seen if issubclass(w.category, NumericsWarning)]
    assert numeric == [w for w in seen if issubclass(w.category, RuntimeWarning)]  # no overflow


def warning_lines(stderr: str) -> list[str]:
    lines = stderr.splitlines()
    assert all(line.startswith("distgp fit: warning: ") for line in lines), lines
    return lines


def test_cli_fits_noiseless_data_with_one_warning_line(tmp_path):
    X, y = noiseless()
    data = write_csv(tmp_path / "noiseless60.csv", {"x": X[:, 0], "y": y})
    argv = ["fit", "--data", data, "--test-fraction", "0", "--no-plots", "--quiet"]
    code, err = run_cli([*argv, "--noise-floor", "1e-12", "--out", str(tmp_path / "a")])
    assert code == 0, err
    lines = warning_lines(err)
    assert len(lines) == 1 and "numerically singular at noise floor 1e-12" in lines[0]
    # the covariance needs jitter at every iterate here: still one line
    more = ["--trend", "none", "--noise-floor", "1e-15", "--out", str(tmp_path / "b")]
    code, err = run_cli([*argv, *more])
    assert code == 0, err
    assert len(warning_lines(err)) == 1
    grid = np.linspace(0.2, 9.8, 50)
    new = write_csv(tmp_path / "grid.csv", {"x": grid})
    out = tmp_path / "p"
    code, err = run_cli(
        ["predict", "--model", str(tmp_path / "b"), "--data", new, "--out", str(out), "--quiet"]
    )
    assert code == 0, err
    mean = np.genfromtxt(out / "predictions.csv", delimiter=",", names=True)["mean"]
    assert np.max(np.abs(mean - np.sin(grid))) < 1e-4


def test_predicting_far_outside_tiny_inputs_warns_nothing(tmp_path):
    rng = np.random.default_rng(1)
    x = np.sort(rng.uniform(0, 10, 100))
    data = write_csv(tmp_path / "tiny.csv", {"x": x * 1e-9, "y": np.sin(x)})
    far = tmp_path / "far.csv"
    far.write_text("x\n1e149\n")
    fit = ["fit", "--data", data, "--out", str(tmp_path / "m"), "--no-plots", "--quiet"]
    assert run_cli(fit)[0] == 0
    predict = ["predict", "--model", str(tmp_path / "m"), "--data", str(far), "--quiet"]
    code, err = run_cli([*predict, "--out", str(tmp_path / "p")])
    assert code == 0 and err == "", err
    row = np.genfromtxt(tmp_path / "p" / "predictions.csv", delimiter=",", names=True)
    assert np.isfinite(row["mean"]) and row["std"] > 0  # the prior


def test_warning_lines_are_one_line_and_once_per_text_up_to_numbers(capsys):
    show = WarningLines("fit")
    show("added jitter 5.71e-11\nto its diagonal", NumericsWarning, "/x/objective.py", 61)
    show("added jitter 5.83e-11 to its diagonal", NumericsWarning, "/x/objective.py", 61)
    show("divide by zero encountered in divide", RuntimeWarning, "/x/dsca.py", 241)
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "distgp fit: warning: added jitter 5.71e-11 to its diagonal",
        "distgp fit: warning: divide by zero encountered in divide (RuntimeWarning, dsca.py:241)",
    ]
