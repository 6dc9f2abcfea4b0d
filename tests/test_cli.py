"""The command line end to end: fit, predict, bad input (one line, exit 2, nothing written)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from distgp.cli import main

REQUIRED_METRICS = {
    "mse",
    "rmse",
    "nlpd",
    "n_train",
    "n_test",
    "dims",
    "agents",
    "components",
    "active_components",
    "noise_variance",
    "rounds",
    "bits_sent",
    "bits_float64",
    "bits_float64_dense",
    "converged",
    "prediction",
    "seconds",
    "objective",
}


def run(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def series_mat(tmp_path):
    x = np.arange(1, 61, dtype=np.uint8)[:, None]
    y = 100 + 10 * np.sin(2 * np.pi * x[:, 0] / 12.0) + 0.3 * x[:, 0]
    path = tmp_path / "series.mat"
    scipy.io.savemat(
        path, {"xtrain": x[:50], "ytrain": y[:50, None], "xtest": x[50:], "ytest": y[50:, None]}
    )
    return path


@pytest.fixture
def table_csv(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(60, 2))
    y = np.sin(4 * X[:, 0]) + X[:, 1]
    site = np.repeat([1, 2, 3], 20)
    path = tmp_path / "table.csv"
    lines = ["a,b,site,target"] + [
        f"{a},{b},{s},{t}" for (a, b), s, t in zip(X, site, y, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_fit_writes_metrics_model_history_and_plots(series_mat, tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = run(
        ["fit", "--data", str(series_mat), "--components", "80", "--out", str(out)], capsys
    )
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) >= REQUIRED_METRICS
    assert metrics["n_train"] == 50 and metrics["n_test"] == 10 and metrics["agents"] == 1
    assert metrics["mse"] < 10.0 and 0 < metrics["bits_sent"] == metrics["bits_float64"]
    for name in ("model.npz", "history.csv", "spectrum.png", "prediction.png"):
        assert (out / name).is_file(), name
    assert "iteration" in err and "test MSE" in err
    # the test split is the 10 points after the series: the rolling origins hold out 10 each
    assert "rolling origins hold out 10 points each" in err
    tune_rows = (out / "tune.csv").read_text().splitlines()
    assert tune_rows[0].split(",")[5] == "fold_points"
    assert all(",10 10," in row for row in tune_rows[1:])
    assert ("stopped at the iteration cap" in err) == (not metrics["converged"])
    # the held-out errors' factor on the predictive variance is printed, recorded and saved
    assert "mean squared z-score" in err and metrics["variance_scale"] >= 1.0
    pred = tmp_path / "pred"
    code, _, err = run(
        [
            "predict",
            "--model",
            str(out / "model.npz"),
            "--data",
            str(series_mat),
            "--out",
            str(pred),
        ],
        capsys,
    )
    assert code == 0, err
    rows = (pred / "predictions.csv").read_text().splitlines()
    assert rows[0] == "x0,mean,std,y" and len(rows) == 11
    predicted = json.loads((pred / "metrics.json").read_text())
    assert predicted["mse"] == pytest.approx(metrics["mse"])
    assert predicted["nlpd"] == pytest.approx(metrics["nlpd"])  # the same intervals


def test_fit_with_agents_by_site_column_and_config_file(table_csv, tmp_path, capsys):
    config = tmp_path / "fit.yaml"
    config.write_text(
        "kernel:\n  components: 30\nconsensus:\n  agents: 3\n  max_rounds: 5\n"
        "  local_iterations: 3\nbackend:\n  name: inline\n"
    )
    out = tmp_path / "agents"
    code, _, err = run(
        ["--quiet"]
        if False
        else [
            "fit",
            "--config",
            str(config),
            "--data",
            str(table_csv),
            "--target",
            "target",
            "--shard",
            "column:site",
            "--test-fraction",
            "0.25",
            "--out",
            str(out),
            "--no-plots",
        ],
        capsys,
    )
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["agents"] == 3 and metrics["dims"] == 2 and 1 <= metrics["rounds"] <= 5
    assert 0 < metrics["bits_sent"] < metrics["bits_float64"] < metrics["bits_float64_dense"]
    assert metrics["n_test"] == 15 and sorted(metrics["shard_sizes"]) == sorted(
        metrics["shard_sizes"]
    )
    history = (out / "history.csv").read_text().splitlines()
    assert history[0].startswith("round,objective") and len(history) == metrics["rounds"] + 1


def test_fit_says_when_it_stops_at_the_iteration_cap(series_mat, tmp_path, capsys):
    out = tmp_path / "capped"
    args = ["fit", "--data", str(series_mat), "--trend", "linear", "--max-iterations", "3"]
    code, _, err = run([*args, "--no-plots", "--out", str(out)], capsys)
    assert code == 0, err
    assert not json.loads((out / "metrics.json").read_text())["converged"]
    assert "stopped at the iteration cap (3; --max-iterations) before DSCA's tests held" in err


def test_a_series_file_listing_the_newest_first_forecasts_its_latest_points(tmp_path, capsys):
    """Files that list the newest first are common (exports of prices, sales): the series is
    put in time order, so the test split is the latest points and the rolling origins run
    forward; a separate --test file is the test split and the --data file trains whole."""
    t = np.arange(60.0, 0.0, -1.0)  # 60 months, newest first
    y = 10 + np.sin(2 * np.pi * t / 12) + 0.1 * t
    data = tmp_path / "newest_first.csv"
    data.write_text("t,y\n" + "".join(f"{a},{b}\n" for a, b in zip(t, y, strict=True)))
    later = tmp_path / "later.csv"
    t2 = np.arange(61.0, 67.0)
    y2 = 10 + np.sin(2 * np.pi * t2 / 12) + 0.1 * t2
    later.write_text("t,y\n" + "".join(f"{a},{b}\n" for a, b in zip(t2, y2, strict=True)))
    out = tmp_path / "run"
    args = ["fit", "--data", str(data), "--components", "40", "--no-plots"]
    code, _, err = run([*args, "--test-fraction", "0.2", "--out", str(out)], capsys)
    assert code == 0, err
    assert "rolling origins hold out 12 points each" in err  # the 12 latest months are tested
    model = np.load(out / "model.npz")
    assert np.all(np.diff(model["X_train"][:, 0]) > 0)  # in time order
    code, _, err = run([*args, "--test", str(later), "--out", str(tmp_path / "t")], capsys)
    assert code == 0, err
    mat = tmp_path / "later.mat"  # a .mat test file needs only its test arrays
    scipy.io.savemat(mat, {"xtest": t2[:, None], "ytest": y2[:, None]})
    code, _, err_mat = run([*args, "--test", str(mat), "--out", str(tmp_path / "m")], capsys)
    assert code == 0, err_mat
    by_mat = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert "data newest_first: 60 training / 6 test points" in err
    metrics = json.loads((tmp_path / "t" / "metrics.json").read_text())
    assert metrics["n_train"] == 60 and metrics["n_test"] == 6
    assert by_mat["mse"] == pytest.approx(metrics["mse"], rel=1e-9)
    assert "rolling origins hold out 6 points each" in err


def test_fit_says_when_a_series_is_too_short_for_the_held_out_choice(tmp_path, capsys):
    data = tmp_path / "short.csv"
    data.write_text("t,y\n" + "".join(f"{i},{np.sin(i)}\n" for i in range(14)))
    code, _, err = run(["fit", "--data", str(data), "--no-plots", "--out", str(tmp_path)], capsys)
    assert code == 0, err
    assert "no held-out choice of the model: 11 points are too few for it" in err


def test_argparse_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["fit", "--agents", "many"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--agents" in err[0]


def test_console_script_help_lists_commands():
    result = subprocess.run(
        [sys.executable, "-m", "distgp", "--help"], capture_output=True, text=True, check=True
    )
    for command in ("fit", "predict", "bench"):
        assert command in result.stdout


def test_every_config_file_parses():
    from distgp.config import load_fit_config, read_yaml

    folder = Path(__file__).resolve().parents[1] / "configs"
    for path in sorted(folder.glob("*.yaml")):
        if "sections" in read_yaml(path) or path.name.startswith("optimize"):
            continue
        load_fit_config(path).validate()


def test_a_write_failure_mid_run_is_one_line_not_a_traceback(
    series_mat, tmp_path, capsys, monkeypatch
):
    def full_disk(path, arrays):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr("distgp.checkpoint.save_npz", full_disk)
    out = tmp_path / "out"
    code, _, err = run(["fit", "--data", str(series_mat), "--quiet", "--out", str(out)], capsys)
    assert code == 1
    assert err.strip().splitlines() == [
        f"distgp fit: error: No space left on device ({out / 'checkpoint.npz'})"
    ]
