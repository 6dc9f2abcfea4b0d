"""The command line end to end: fit, predict, bad input (one line, exit 2, nothing written)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from unittest.mock import ANY

import numpy as np
import pandas as pd
import pytest
import scipy.io

from distgp.cli import main
from distgp.data import load_prediction_inputs
from distgp.exceptions import InputDataError

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
    assert "changes repeat every 12 input units" in err  # a monthly season: one more candidate
    assert metrics["season"] in (0.0, 12.0)
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
    assert rows[0] == "x0,mean,std,lower95,upper95,y" and len(rows) == 11
    table = np.loadtxt(pred / "predictions.csv", delimiter=",", skiprows=1)
    lower, upper, y = table[:, 3], table[:, 4], table[:, 5]
    assert np.all(lower < table[:, 1]) and np.all(table[:, 1] < upper)
    predicted = json.loads((pred / "metrics.json").read_text())
    assert predicted["mse"] == pytest.approx(metrics["mse"])
    assert predicted["nlpd"] == pytest.approx(metrics["nlpd"])  # the same intervals
    inside = np.mean((lower <= y) & (y <= upper))
    assert predicted["coverage95"] == pytest.approx(inside) == pytest.approx(metrics["coverage95"])
    # --ahead H: the H steps after the last training point (50), no input file needed; the
    # first ten are the test split's inputs, so the same forecasts
    ahead = tmp_path / "ahead"
    code, _, err = run(
        ["predict", "--model", str(out / "model.npz"), "--ahead", "12", "--out", str(ahead)],
        capsys,
    )
    assert code == 0, err
    forecast = np.loadtxt(ahead / "predictions.csv", delimiter=",", skiprows=1)
    np.testing.assert_array_equal(forecast[:, 0], np.arange(51.0, 63.0))
    np.testing.assert_allclose(forecast[:10, 1:5], table[:, 1:5])
    assert not (ahead / "metrics.json").exists() and (ahead / "forecast.png").is_file()
    # a later prediction into the folder leaves no figure of the earlier forecast
    again = ["predict", "--model", str(out), "--data", str(series_mat), "--out", str(ahead)]
    assert run(again, capsys)[0] == 0
    assert not (ahead / "forecast.png").exists() and (ahead / "metrics.json").is_file()


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
    # its rows shuffled: the same series, so the same fit as in time order
    shuffled = tmp_path / "shuffled.csv"
    rows = data.read_text().splitlines()
    order = np.random.default_rng(0).permutation(60)
    shuffled.write_text("\n".join([rows[0], *(rows[1 + i] for i in order)]) + "\n")
    ordered = json.loads((out / "metrics.json").read_text())
    mixed = ["--data", str(shuffled), "--test-fraction", "0.2", "--out", str(tmp_path / "s")]
    code, _, err = run([*args[:1], *mixed, *args[3:]], capsys)
    assert code == 0 and "rolling origins hold out 12 points each" in err, err
    assert json.loads((tmp_path / "s" / "metrics.json").read_text())["mse"] == ordered["mse"]


def test_an_unevenly_spaced_input_is_no_series_in_any_unit():
    """The steps are compared relatively: inputs in tiny units are not evenly spaced by an
    absolute tolerance."""
    from distgp.data import is_series

    x = np.sort(np.random.default_rng(3).uniform(0, 100, 80))[:, None]
    assert not is_series(x) and not is_series(x * 1e-10)
    assert is_series(np.arange(80.0)[:, None] * 1e-10)


def test_dates_as_numbers_and_series_with_gaps_are_series():
    """Steps that are whole numbers of the median step to within 10%: months in days, years in
    nanoseconds (leap days), a missing year; the season of months in days is read in days."""
    import pandas as pd

    from distgp.data import is_series
    from distgp.seasonality import seasonal_period

    months = pd.date_range("2000-01-01", periods=120, freq="MS")
    days = ((months - months[0]) / pd.Timedelta(days=1)).to_numpy(float)[:, None]
    years = pd.date_range("1871-01-01", periods=100, freq="YS")
    nanoseconds = ((years - years[0]) / pd.Timedelta(1, "ns")).to_numpy(float)[:, None]
    gap = np.delete(np.arange(1871.0, 1971.0), 30)[:, None]
    assert is_series(days) and is_series(nanoseconds) and is_series(gap)
    y = np.sin(2 * np.pi * np.arange(120) / 12) + 0.1 * np.random.default_rng(0).normal(size=120)
    assert seasonal_period(days, y) == pytest.approx(365.25, abs=0.1)
    assert seasonal_period(gap, np.sin(gap[:, 0])) is None  # lags in steps need every point
    rng = np.random.default_rng(1)
    for n in (8, 20, 80, 500):  # scattered inputs stay regression data
        assert not any(is_series(np.sort(rng.uniform(0, 100, (n, 1)), 0)) for _ in range(200))
    assert not is_series(np.array([[0.0], [1.0], [2.0], [4.0], [5.0]]))  # short and uneven


def test_fit_says_when_a_series_is_too_short_for_the_held_out_choice(tmp_path, capsys):
    data = tmp_path / "short.csv"
    data.write_text("t,y\n" + "".join(f"{i},{np.sin(i)}\n" for i in range(14)))
    code, _, err = run(["fit", "--data", str(data), "--no-plots", "--out", str(tmp_path)], capsys)
    assert code == 0, err
    assert "no held-out choice of the model: 11 points are too few for it" in err


@pytest.mark.parametrize("flat", [40, 50])
def test_a_series_that_starts_flat_is_fitted_without_scoring_its_flat_splits(
    flat, tmp_path, capsys
):
    t = np.arange(1, 81)
    y = np.where(t <= flat, 5.0, 5.0 + 0.3 * (t - flat))
    data = _write_csv(tmp_path / "ramp.csv", ["t", "y"], [t, y])
    fit = ["fit", "--data", str(data), "--no-plots"]
    code, _, err = run([*fit, "--out", str(tmp_path / "a")], capsys)
    assert code == 0, err
    # the earlier origin trains on the first 32 points (flat either way), the later on 48
    if flat == 50:
        assert "training part are constant; a linear trend" in err
    else:
        assert "selected" in err and "constant" not in err
    code, _, err = run([*fit, "--tune", "4", "--out", str(tmp_path / "b")], capsys)
    if flat == 50:
        last = err.splitlines()[-1]
        assert code == 2 and last.startswith("distgp fit: error: the outputs of every held-out")
        assert not (tmp_path / "b").exists()
    else:
        assert code == 0, err


def test_agents_that_a_fold_cannot_feed_make_no_held_out_choice(tmp_path, capsys):
    """60 points over 5 agents fit (12 each), but the rolling origin's training parts of 30
    and 45 points would leave shards below data.min_shard_size (10)."""
    t = np.arange(1, 76)
    data = _write_csv(tmp_path / "s.csv", ["t", "y"], [t, np.sin(t / 3) + 0.02 * t])
    fit = ["fit", "--data", str(data), "--no-plots", "--agents", "5", "--backend", "inline"]
    code, _, err = run([*fit, "--out", str(tmp_path / "a")], capsys)
    assert code == 0, err
    assert "training part is too small to share among the agents" in err
    code, _, err = run([*fit, "--tune", "4", "--out", str(tmp_path / "b")], capsys)
    assert code == 2 and "with fewer agents, or without --tune" in err.splitlines()[-1]


def test_predict_says_why_a_model_of_log_y_scores_outputs_below_zero_as_impossible(
    tmp_path, capsys
):
    t = np.arange(1, 41)
    y = np.exp(0.02 * t + 0.1 * np.sin(t))
    train = _write_csv(tmp_path / "train.csv", ["t", "y"], [t, y])
    fit = ["fit", "--data", str(train), "--transform", "log", "--trend", "linear", "--no-plots"]
    assert run([*fit, "--out", str(tmp_path / "m")], capsys)[0] == 0
    odd = _write_csv(tmp_path / "odd.csv", ["t", "y"], [t[:4], [1.0, 0.0, -2.0, 1.1]])
    predict = ["predict", "--model", str(tmp_path / "m"), "--data", str(odd)]
    code, _, err = run([*predict, "--out", str(tmp_path / "p")], capsys)
    assert code == 0, err
    assert "2 of the 4 outputs are <= 0, which the model of log(y) gives no density" in err
    metrics = json.loads((tmp_path / "p" / "metrics.json").read_text())
    assert metrics["nlpd"] is None and metrics["coverage95"] <= 0.5


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


def test_a_torch_device_fit_with_parallel_held_out_fits_matches_the_cpu_fit(tmp_path):
    """``--device torch:cpu`` on a series whose held-out trend/season choice runs fits in a
    thread pool (256+ rows, 2 threads): torch is imported before the pool, not by its first
    fit while another thread reads the half-imported module. Each run in a fresh process, so
    that no earlier test has imported torch."""
    pytest.importorskip("torch")
    n = 300
    x = np.arange(1.0, n + 1.0)[:, None]
    y = 100 + 10 * np.sin(2 * np.pi * x[:, 0] / 12.0) + 0.03 * x[:, 0]
    y += np.random.default_rng(0).normal(size=n)
    data = tmp_path / "long.mat"
    scipy.io.savemat(
        data, {"xtrain": x[:280], "ytrain": y[:280, None], "xtest": x[280:], "ytest": y[280:, None]}
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    metrics = {}
    for device in ("cpu", "torch:cpu"):
        out = tmp_path / device.replace(":", "_")
        argv = ["fit", "--data", str(data), "--components", "16", "--threads", "2"]
        argv += ["--device", device, "--backend", "inline", "--no-plots", "--quiet"]
        result = subprocess.run(
            [sys.executable, "-m", "distgp", *argv, "--out", str(out)],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        metrics[device] = json.loads((out / "metrics.json").read_text())
    ref, got = metrics["cpu"], metrics["torch:cpu"]
    for key in ("mse", "nlpd", "objective", "noise_variance"):
        assert got[key] == pytest.approx(ref[key], rel=1e-8), key


def test_predict_with_the_config_of_a_gpu_fit_needs_no_gpu(series_mat, tmp_path, capsys):
    """``predict --config`` checks the names in the file, not that this machine has the GPU
    a fit there used: predict runs on the CPU."""
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    out = tmp_path / "run"
    argv = ["fit", "--data", str(series_mat), "--components", "20", "--trend", "linear"]
    code, _, err = run([*argv, "--no-plots", "--quiet", "--out", str(out)], capsys)
    assert code == 0, err
    config = tmp_path / "gpu.yaml"
    config.write_text("learn:\n  device: cuda\n")
    predict = ["predict", "--model", str(out), "--data", str(series_mat), "--quiet"]
    code, _, err = run([*predict, "--config", str(config), "--out", str(tmp_path / "p")], capsys)
    assert code == 0, err
    config.write_text("learn:\n  device: tpu\n")
    code, _, err = run([*predict, "--config", str(config), "--out", str(tmp_path / "q")], capsys)
    assert code == 2 and "learn.device" in err


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
    fixed = ["--trend", "local"]  # the full grid: a fit long enough to checkpoint
    code, _, err = run(
        ["fit", "--data", str(series_mat), *fixed, "--quiet", "--out", str(out)], capsys
    )
    assert code == 1
    assert err.strip().splitlines() == [
        f"distgp fit: error: No space left on device ({out / 'checkpoint.npz'})"
    ]


def _contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def test_a_failed_output_write_leaves_the_earlier_results_whole(
    series_mat, tmp_path, capsys, monkeypatch
):
    """Outputs are staged and moved into place at the end: a write failure after the fit
    leaves the folder's earlier results as they were (nothing of the new run but the
    checkpoint, which --resume finishes from); a predict likewise."""
    out = tmp_path / "run"
    fit = ["fit", "--data", str(series_mat), "--trend", "linear", "--out", str(out)]
    assert run([*fit, "--quiet"], capsys)[0] == 0
    earlier = _contents(out)
    pred = tmp_path / "pred"
    predict = ["predict", "--model", str(out), "--data", str(series_mat), "--out", str(pred)]
    assert run([*predict, "--quiet"], capsys)[0] == 0
    predicted = _contents(pred)

    def full_disk(path):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr("distgp.plots.spectrum", lambda model, path: full_disk(path))
    code, _, err = run([*fit[:3], "--trend", "none", "--out", str(out)], capsys)
    assert code == 1
    assert err.strip().splitlines()[-1] == (
        f"distgp fit: error: No space left on device ({out / 'spectrum.png'}); once it is "
        f"fixed, 'distgp fit --resume {out}' finishes the run and writes its outputs"
    )
    assert _contents(out) == {**earlier, "checkpoint.npz": ANY}
    assert sorted(p.name for p in out.iterdir()) == sorted([*earlier, "checkpoint.npz"])
    monkeypatch.undo()
    assert run(["fit", "--resume", str(out), "--quiet"], capsys)[0] == 0
    assert json.loads((out / "metrics.json").read_text())["trend"] == "none"
    assert not (out / "checkpoint.npz").exists()
    monkeypatch.setattr("distgp.io.write_json", lambda path, data: full_disk(path))
    code, _, err = run([*predict, "--quiet"], capsys)
    assert code == 1 and "No space left on device" in err
    assert sorted(p.name for p in pred.iterdir()) == sorted(predicted)
    assert _contents(pred) == predicted


def test_a_write_failure_without_a_file_name_names_the_output(
    series_mat, tmp_path, capsys, monkeypatch
):
    """matplotlib's savefig raises OSError without a file name on a full disk: the error named
    no file."""
    from matplotlib.figure import Figure

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", full_disk)
    out = tmp_path / "run"
    fit = ["fit", "--data", str(series_mat), "--trend", "linear", "--quiet", "--out", str(out)]
    code, _, err = run(fit, capsys)
    assert code == 1
    assert re.fullmatch(
        rf"distgp fit: error: No space left on device \({re.escape(str(out))}/\w+\.png\); once "
        rf"it is fixed, 'distgp fit --resume {re.escape(str(out))}' finishes the run and writes "
        r"its outputs",
        err.strip(),
    ), err


def test_staging_folders_of_killed_runs_are_removed_and_fresh_ones_kept(tmp_path):
    """A run killed by SIGKILL cannot remove its staging folder; the next run into the same
    --out removes it once it is an hour old, and leaves a fresh one (a live run's) alone."""
    import os
    import time

    from distgp.io import ABANDONED_STAGE_SECONDS, STAGE_PREFIX, staged_outputs

    killed, live = tmp_path / f"{STAGE_PREFIX}abc", tmp_path / f"{STAGE_PREFIX}def"
    for folder in (killed, live):
        (folder / "model.npz").parent.mkdir()
        (folder / "model.npz").write_bytes(b"partial")
    old = time.time() - ABANDONED_STAGE_SECONDS - 60
    os.utime(killed, (old, old))
    with staged_outputs(tmp_path) as stage:
        assert stage.name.startswith(STAGE_PREFIX)
    assert [p.name for p in tmp_path.iterdir()] == [live.name]


@pytest.mark.parametrize("command", ["fit", "predict"])
def test_an_output_name_taken_by_a_folder_is_refused_before_the_run(
    command, series_mat, tmp_path, capsys
):
    name = {"fit": "spectrum.png", "predict": "predictions.csv"}[command]
    out = tmp_path / "out"
    (out / name).mkdir(parents=True)
    argv = ["fit", "--data", str(series_mat)]
    if command == "predict":
        model = tmp_path / "model"
        assert run([*argv, "--trend", "linear", "--quiet", "--out", str(model)], capsys)[0] == 0
        argv = ["predict", "--model", str(model), "--data", str(series_mat)]
    code, _, err = run([*argv, "--out", str(out)], capsys)
    assert code == 2
    assert err.strip().splitlines() == [
        f"distgp {command}: error: --out {out} holds a folder named {name}, where distgp "
        f"{command} writes a file; move or rename that folder, or choose another --out"
    ]
    assert [p.name for p in out.iterdir()] == [name]


def _write_csv(path: Path, header: list[str], columns: list[np.ndarray]) -> Path:
    import csv

    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(zip(*columns, strict=True))
    return path


def test_test_and_prediction_files_are_matched_to_the_training_columns_by_name(tmp_path, capsys):
    rng = np.random.default_rng(1)
    X = rng.uniform(size=(70, 2))
    y = np.sin(4 * X[:, 0]) + 0.2 * X[:, 1] + 0.02 * rng.standard_normal(70)
    odd = 'a,"q"'  # a name that needs quoting in CSV
    train = _write_csv(tmp_path / "train.csv", [odd, "b", "y"], [X[:50, 0], X[:50, 1], y[:50]])
    test = _write_csv(tmp_path / "test.csv", [odd, "b", "y"], [X[50:, 0], X[50:, 1], y[50:]])
    # the same test rows with the columns reordered and a column the model never saw
    shuffled = _write_csv(
        tmp_path / "shuffled.csv",
        ["site", "y", "b", odd],
        [np.ones(20), y[50:], X[50:, 1], X[50:, 0]],
    )
    fit = ["fit", "--components", "40", "--no-plots", "--data", str(train)]
    code, _, err = run([*fit, "--test", str(test), "--out", str(tmp_path / "a")], capsys)
    assert code == 0, err
    code, _, err = run([*fit, "--test", str(shuffled), "--out", str(tmp_path / "b")], capsys)
    assert code == 0, err
    a, b = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in "ab")
    assert b["mse"] == pytest.approx(a["mse"]) and a["mse"] < 0.05
    pred = tmp_path / "pred"
    model = str(tmp_path / "a" / "model.npz")
    code, _, err = run(
        ["predict", "--model", model, "--data", str(shuffled), "--out", str(pred)], capsys
    )
    assert code == 0, err
    assert json.loads((pred / "metrics.json").read_text())["mse"] == pytest.approx(a["mse"])
    import csv

    rows = list(csv.reader((pred / "predictions.csv").open()))
    header = [odd, "b", "mean", "std", "lower95", "upper95", "y"]
    assert rows[0] == header and {len(r) for r in rows} == {7}
    assert float(rows[1][0]) == X[50, 0]  # inputs and outputs to the last bit
    assert float(rows[1][-1]) == y[50]
    # the fit's output folder stands for its model.npz
    code, _, err = run(
        ["predict", "--model", str(tmp_path / "a"), "--data", str(shuffled), "--out", str(pred)],
        capsys,
    )
    assert code == 0, err
    assert list(csv.reader((pred / "predictions.csv").open())) == rows
    # the suffix is matched whatever its case (not read as a data set with a random test split)
    upper = tmp_path / "SHUFFLED.CSV"
    upper.write_bytes(shuffled.read_bytes())
    code, _, err = run(
        ["predict", "--model", model, "--data", str(upper), "--out", str(pred)], capsys
    )
    assert code == 0, err
    assert list(csv.reader((pred / "predictions.csv").open())) == rows
    # rows whose outputs are not known yet (an empty output column) are predicted, unscored
    future = _write_csv(tmp_path / "future.csv", [odd, "b", "y"], [X[50:, 0], X[50:, 1], [""] * 20])
    code, _, err = run(
        ["predict", "--model", model, "--data", str(future), "--out", str(pred)], capsys
    )
    assert code == 0, err
    assert [r[:-1] for r in rows] == list(csv.reader((pred / "predictions.csv").open()))
    assert not (pred / "metrics.json").exists()
    some = _write_csv(
        tmp_path / "some.csv", [odd, "b", "y"], [X[50:, 0], X[50:, 1], [1.0] + [""] * 19]
    )
    code, _, err = run(
        ["predict", "--model", model, "--data", str(some), "--out", str(pred)], capsys
    )  # known rows and future ones in one file: every row predicted, the known one scored
    assert code == 0, err
    assert "19 of the 20 rows have no output yet: predicted, not scored" in err
    written = list(csv.reader((pred / "predictions.csv").open()))
    assert [r[:-1] for r in written] == [r[:-1] for r in rows]
    assert [r[-1] for r in written[1:]] == ["1.0"] + [""] * 19
    scored = json.loads((pred / "metrics.json").read_text())
    assert scored["n"] == 1 and scored["mse"] == pytest.approx((float(rows[1][2]) - 1.0) ** 2)
    # a --test file needs every output
    code, _, err = run(
        [
            "fit",
            "--data",
            str(train),
            "--test",
            str(some),
            "--max-iterations",
            "2",
            "--no-plots",
            "--out",
            str(tmp_path / "t"),
        ],
        capsys,
    )
    assert (
        code == 2
        and "column y of some.csv is empty in 19 of 20 row(s) (first: row 3); a test" in err
    )
    assert not (tmp_path / "t").exists()
    # a file without one of the model's inputs is refused, naming it
    partial = _write_csv(tmp_path / "partial.csv", [odd, "y"], [X[50:, 0], y[50:]])
    code, _, err = run(
        ["predict", "--model", model, "--data", str(partial), "--out", str(tmp_path / "p2")],
        capsys,
    )
    assert code == 2 and "lacks the input column(s) 'b'" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "p2").exists()


def test_a_refit_into_the_same_folder_leaves_no_outputs_of_the_earlier_fit(
    series_mat, tmp_path, capsys
):
    out = tmp_path / "run"
    fit = ["fit", "--data", str(series_mat), "--components", "40", "--out", str(out)]
    assert run(fit, capsys)[0] == 0
    assert (out / "spectrum.png").is_file() and (out / "tune.csv").is_file()
    assert run([*fit, "--no-plots", "--trend", "linear"], capsys)[0] == 0
    assert not (out / "spectrum.png").exists() and not (out / "prediction.png").exists()
    assert not (out / "tune.csv").exists()  # no outer choice with a trend set


def test_a_private_model_fitted_with_a_test_file_predicts_on_a_file_with_its_shard_column(
    table_csv, tmp_path, capsys
):
    lines = table_csv.read_text().splitlines()
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    rows = lines[1:]
    train.write_text("\n".join([lines[0], *(r for i, r in enumerate(rows) if i % 4)]) + "\n")
    test.write_text("\n".join([lines[0], *rows[::4]]) + "\n")  # 15 of each site's 20 train
    out = tmp_path / "private"
    code, _, err = run(
        [
            "fit",
            *("--data", str(train), "--test", str(test), "--target", "target"),
            *("--shard", "column:site", "--agents", "3", "--backend", "inline"),
            *("--components", "30", "--rounds", "5", "--no-plots", "--out", str(out)),
        ],
        capsys,
    )
    assert code == 0, err
    fitted = json.loads((out / "metrics.json").read_text())
    assert fitted["prediction"] == "private" and fitted["n_train"] == 45
    pred = tmp_path / "pred"
    model = str(out / "model.npz")
    code, _, err = run(
        ["predict", "--model", model, "--data", str(test), "--out", str(pred)], capsys
    )
    assert code == 0, err  # the site column, not an input, is ignored by name
    assert json.loads((pred / "metrics.json").read_text())["mse"] == pytest.approx(fitted["mse"])


def test_an_interrupted_fit_names_the_resume_command(series_mat, tmp_path, capsys, monkeypatch):
    import distgp.cli.fit as fit_command

    def interrupted(dataset, config, progress, checkpoint, *rest):
        checkpoint.save(config, {"iterations": 3})
        raise KeyboardInterrupt

    monkeypatch.setattr(fit_command, "_learn", interrupted)
    out = tmp_path / "run"
    code, _, err = run(["fit", "--data", str(series_mat), "--out", str(out)], capsys)
    assert code == 130
    assert err.strip().endswith(f"interrupted; 'distgp fit --resume {out}' continues it")


def test_a_fit_interrupted_before_its_first_checkpoint_offers_no_resume_of_an_older_one(
    series_mat, tmp_path, capsys, monkeypatch
):
    """An earlier run's checkpoint.npz in the folder was offered: --resume finished that run."""
    import distgp.cli.fit as fit_command

    def interrupted(dataset, config, progress, checkpoint, *rest):
        if config.kernel.components == 7:  # the earlier run saves one
            checkpoint.save(config, {"iterations": 3})
        raise KeyboardInterrupt

    monkeypatch.setattr(fit_command, "_learn", interrupted)
    out = tmp_path / "run"
    argv = ["fit", "--data", str(series_mat), "--out", str(out)]
    assert run([*argv, "--components", "7"], capsys)[0] == 130
    earlier = (out / "checkpoint.npz").read_bytes()
    code, _, err = run(argv, capsys)
    assert code == 130 and "--resume" not in err.splitlines()[-1], err
    assert err.strip().endswith(
        "interrupted; the run had saved no checkpoint yet: run the same command again to start "
        f"it over ({out / 'checkpoint.npz'} is an earlier run's, which the new run replaces at "
        "its first checkpoint)"
    )
    assert (out / "checkpoint.npz").read_bytes() == earlier

    def disk_full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fit_command, "_learn", disk_full)
    code, _, err = run(argv, capsys)
    assert code == 1 and err.splitlines()[-1] == "distgp fit: error: No space left on device"


@pytest.mark.skipif(sys.platform == "win32", reason="no fcntl: runs are not locked")
def test_a_second_run_into_a_folder_in_use_is_refused(series_mat, tmp_path, capsys, monkeypatch):
    """Two runs into one --out overwrote each other's checkpoint, and the first to end removed
    the other's: each run locks its folder (.distgp.lock), --resume too."""
    import distgp.cli.fit as fit_command
    from distgp.io import LOCK_NAME, lock_output_dir

    def interrupted(dataset, config, progress, checkpoint, *rest):
        checkpoint.save(config, {"iterations": 3})
        raise KeyboardInterrupt

    monkeypatch.setattr(fit_command, "_learn", interrupted)
    out = tmp_path / "run"
    argv = ["fit", "--data", str(series_mat), "--out", str(out)]
    assert run(argv, capsys)[0] == 130
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.npz"]  # the lock is gone
    saved = (out / "checkpoint.npz").read_bytes()
    held = lock_output_dir(out)  # as another run holds it
    try:
        code, _, err = run([*argv, "--quiet"], capsys)
        assert code == 2 and err == (
            f"distgp fit: error: --out {out}: another distgp run is writing into this folder; "
            "choose another --out, or wait for it to end\n"
        )
        code, _, err = run(["fit", "--resume", str(out), "--quiet"], capsys)
        assert code == 2 and err == (
            f"distgp fit: error: --resume {out}: another distgp run is writing into this "
            "folder; wait for it to end\n"
        )
        code, _, err = run(["optimize", "--function", "branin", "--out", str(out)], capsys)
        assert code == 2 and "another distgp run is writing into this folder" in err
    finally:
        held.release()
    assert (out / "checkpoint.npz").read_bytes() == saved
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.npz"]
    assert run(["fit", "--resume", str(out), "--quiet"], capsys)[0] == 130  # free again
    assert not (out / LOCK_NAME).exists()


@pytest.mark.skipif(sys.platform == "win32", reason="no fcntl: runs are not locked")
def test_the_output_lock_holds_across_processes_and_goes_with_its_process(tmp_path):
    from distgp.exceptions import ConfigError
    from distgp.io import LOCK_NAME, lock_output_dir

    out = tmp_path / "new" / "run"
    script = (
        "import sys, pathlib; from distgp.io import lock_output_dir; "
        "lock_output_dir(pathlib.Path(sys.argv[1])); print('held', flush=True); sys.stdin.read()"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    other = subprocess.Popen(
        [sys.executable, "-c", script, str(out)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert other.stdout.readline() == "held\n"
        with pytest.raises(ConfigError, match="another distgp run is writing into this folder"):
            lock_output_dir(out)
    finally:
        other.kill()  # as SIGKILL: the lock goes with the process, its file stays
        other.wait()
    assert (out / LOCK_NAME).is_file()
    lock_output_dir(out).release()  # free: its file removed
    assert not (out / LOCK_NAME).exists() and out.is_dir()
    fresh = tmp_path / "fresh" / "run"
    lock_output_dir(fresh).release()
    assert not (tmp_path / "fresh").exists()  # nothing written: the folders it made are removed


def test_a_shard_column_without_agents_gives_one_agent_per_site(table_csv, tmp_path, capsys):
    out = tmp_path / "sites"
    code, _, err = run(
        [
            "fit",
            *("--data", str(table_csv), "--target", "target", "--shard", "column:site"),
            *("--backend", "inline", "--components", "30", "--rounds", "3", "--no-plots"),
            *("--out", str(out)),
        ],
        capsys,
    )
    assert code == 0, err
    assert "3 agents, one per value of site" in err
    assert json.loads((out / "metrics.json").read_text())["agents"] == 3


def test_a_constant_input_column_is_named(tmp_path, capsys):
    rng = np.random.default_rng(2)
    x = rng.uniform(size=40)
    data = _write_csv(tmp_path / "c.csv", ["x", "unit", "y"], [x, np.ones(40), np.sin(3 * x)])
    code, _, err = run(
        [
            "fit",
            "--data",
            str(data),
            "--components",
            "20",
            "--no-plots",
            "--trend",
            "none",
            "--out",
            str(tmp_path / "o"),
        ],
        capsys,
    )
    assert code == 0, err
    assert "input column(s) unit are constant in the training data (to rounding)" in err


def test_a_private_model_predicts_from_another_folder_and_names_a_lost_training_file(
    table_csv, tmp_path, capsys, monkeypatch
):
    """Its agents are rebuilt from the training file, recorded as an absolute path: predict
    works from any folder, and a file gone since says so (not 'data file ... does not exist')."""
    monkeypatch.chdir(tmp_path)
    fit = ["fit", "--data", table_csv.name, "--target", "target", "--agents", "2"]
    fit += ["--backend", "inline", "--components", "20", "--no-plots", "--out", "run"]
    code, _, err = run(fit, capsys)
    assert code == 0, err
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    predict = ["predict", "--model", "../run", "--data", "../table.csv", "--out", "p"]
    code, _, err = run(predict, capsys)
    assert code == 0, err
    assert (tmp_path / "elsewhere" / "p" / "predictions.csv").is_file()
    table_csv.rename(tmp_path / "moved.csv")
    moved = ["predict", "--model", "../run", "--data", "../moved.csv", "--out", "p2"]
    code, _, err = run(moved, capsys)
    assert code == 2 and f"training file {table_csv} which" in err.replace(",", ""), err


def test_a_fit_into_a_folder_of_the_users_own_files_removes_none(series_mat, tmp_path, capsys):
    """Only an earlier fit's optional outputs are stale; a user's own tune.csv in a folder that
    held no fit stays (it was deleted as if a fit had written it)."""
    out = tmp_path / "mine"
    out.mkdir()
    (out / "tune.csv").write_text("my notes\n")
    fit = ["fit", "--data", str(series_mat), "--components", "40", "--no-plots"]
    assert run([*fit, "--trend", "linear", "--out", str(out)], capsys)[0] == 0
    assert (out / "tune.csv").read_text() == "my notes\n"


def test_a_fit_interrupted_while_publishing_still_has_its_stale_outputs_removed(
    series_mat, tmp_path, capsys
):
    """Outputs move into place with metrics.json last: a fit stopped between the moves leaves a
    model.npz without it, and the next fit took the folder's earlier tune.csv for a user's."""
    out = tmp_path / "run"
    fit = ["fit", "--data", str(series_mat), "--components", "40", "--no-plots", "--quiet"]
    assert run([*fit, "--out", str(out)], capsys)[0] == 0  # the default choice: a tune.csv
    assert (out / "tune.csv").is_file()
    (out / "metrics.json").unlink()  # as if interrupted before its move
    assert run([*fit, "--trend", "linear", "--out", str(out)], capsys)[0] == 0
    assert not (out / "tune.csv").exists()


def test_prediction_columns_never_share_a_name_with_an_input(tmp_path, capsys):
    import csv

    rng = np.random.default_rng(3)
    X = rng.uniform(-2, 2, size=(40, 2))
    z = np.sin(X[:, 0]) + 0.5 * X[:, 1]
    data = _write_csv(tmp_path / "clash.csv", ["mean", "y", "z"], [X[:, 0], X[:, 1], z])
    fit = ["fit", "--components", "20", "--no-plots", "--data", str(data), "--target", "z"]
    code, _, err = run([*fit, "--out", str(tmp_path / "fit")], capsys)
    assert code == 0, err
    pred = tmp_path / "pred"
    argv = ["predict", "--model", str(tmp_path / "fit"), "--data", str(data), "--target", "z"]
    code, _, err = run([*argv, "--out", str(pred)], capsys)
    assert code == 0, err
    assert "input column 'mean' is written as 'mean_input'" in err
    rows = list(csv.reader((pred / "predictions.csv").open()))
    assert rows[0] == ["mean_input", "y_input", "mean", "std", "lower95", "upper95", "y"]
    assert float(rows[1][0]) == X[0, 0] and float(rows[1][-1]) == z[0]


def test_csv_column_names_are_read_without_surrounding_spaces(tmp_path, capsys):
    t = np.arange(40.0)
    path = tmp_path / "spaced.csv"
    path.write_text(" t , y\n" + "".join(f"{a}, {np.sin(a / 3)}\n" for a in t))
    from distgp.data import load_dataset

    dataset = load_dataset(str(path), target="y")
    assert dataset.feature_names == ["t"] and dataset.target_name == "y"
    assert len(dataset.y_train) + len(dataset.y_test) == 40


def test_predict_says_when_a_model_without_column_names_takes_a_csv_by_position(tmp_path, capsys):
    rng = np.random.default_rng(4)
    X = rng.uniform(-2, 2, size=(40, 2))
    y = np.sin(X[:, 0]) + 0.5 * X[:, 1]
    np.savez(tmp_path / "train.npz", X=X, y=y)
    fit = ["fit", "--data", str(tmp_path / "train.npz"), "--components", "20", "--no-plots"]
    assert run([*fit, "--out", str(tmp_path / "m")], capsys)[0] == 0
    data = _write_csv(tmp_path / "p.csv", ["b", "a", "y"], [X[:5, 1], X[:5, 0], y[:5]])
    argv = ["predict", "--model", str(tmp_path / "m"), "--data", str(data)]
    code, _, err = run([*argv, "--out", str(tmp_path / "p")], capsys)
    assert code == 0, err
    assert "inputs are taken by position, the file's columns b, a" in err
    # the extra last column is scored against: the note names it (audit 10 item 8)
    assert "; column y is taken as the known outputs, scored against and written as y" in err
    data = _write_csv(tmp_path / "q.csv", ["foo", "bar", "baz"], [X[:5, 0], X[:5, 1], y[:5]])
    argv = ["predict", "--model", str(tmp_path / "m"), "--data", str(data)]
    code, _, err = run([*argv, "--out", str(tmp_path / "q")], capsys)
    assert code == 0, err
    assert (
        "the file's columns foo, bar; column baz is taken as the known outputs, scored against "
        "and written as y (--target names another)" in err
    )
    ordered = _write_csv(tmp_path / "o.csv", ["a", "b", "y"], [X[:5, 0], X[:5, 1], y[:5]])
    argv = ["predict", "--model", str(tmp_path / "m"), "--data", str(ordered)]
    assert run([*argv, "--out", str(tmp_path / "po")], capsys)[0] == 0
    by_position = np.loadtxt(tmp_path / "po" / "predictions.csv", delimiter=",", skiprows=1)
    # the columns distgp writes for such a model (x0, x1; y the outputs) match by name, in
    # any order, with no note
    data = _write_csv(tmp_path / "x.csv", ["y", "x1", "x0"], [y[:5], X[:5, 1], X[:5, 0]])
    argv = ["predict", "--model", str(tmp_path / "m"), "--data", str(data)]
    code, _, err = run([*argv, "--out", str(tmp_path / "px")], capsys)
    assert code == 0 and "by position" not in err, err
    rows = (tmp_path / "px" / "predictions.csv").read_text().splitlines()
    assert rows[0] == "x0,x1,mean,std,lower95,upper95,y"
    np.testing.assert_allclose(np.loadtxt(rows[1:], delimiter=","), by_position)
    # a file with another number of columns: the file's columns, counted right, and the fix
    wide = _write_csv(tmp_path / "w.csv", ["a", "b", "c", "d"], [X[:5, 0], X[:5, 1], y[:5], y[:5]])
    argv = ["predict", "--model", str(tmp_path / "m"), "--data", str(wide)]
    code, _, err = run([*argv, "--out", str(tmp_path / "pw")], capsys)
    assert code == 2 and not (tmp_path / "pw").exists()
    assert err.strip().splitlines() == [
        "distgp predict: error: w.csv has 4 columns (a, b, c, d), but the model was fitted on 2 "
        "unnamed input(s) (arrays, .mat or .npz data): give a file with the columns x0, x1 (and y "
        "to score), or with 2 input columns in the model's order (then the output)"
    ]
    code, _, err = run([*argv, "--target", "d", "--out", str(tmp_path / "pw")], capsys)
    assert code == 2 and "w.csv has 3 input column(s) (a, b, c), but the model was" in err
    # and the other way round: a model of named columns, a file without names
    named = _write_csv(tmp_path / "named.csv", ["a", "b", "y"], [X[:, 0], X[:, 1], y])
    fit = ["fit", "--data", str(named), "--components", "20", "--no-plots"]
    assert run([*fit, "--out", str(tmp_path / "n")], capsys)[0] == 0
    argv = ["predict", "--model", str(tmp_path / "n"), "--data", str(tmp_path / "train.npz")]
    code, _, err = run([*argv, "--out", str(tmp_path / "q")], capsys)
    assert code == 0, err
    assert (
        "has no named columns to match: its inputs are taken by position as the model's a, b" in err
    )


def test_an_admm_result_that_is_the_starting_point_is_said_so(tmp_path, capsys):
    """40 agents of three points each: no round after the first lowers the sum of their
    objectives at the consensus, so the model is the starting point."""
    rng = np.random.default_rng(5)
    X = rng.uniform(-2, 2, size=(120, 2))
    y = np.sin(2 * X[:, 0]) + 0.5 * X[:, 1] + 0.1 * rng.standard_normal(120)
    data = _write_csv(tmp_path / "d.csv", ["a", "b", "y"], [X[:, 0], X[:, 1], y])
    argv = ["fit", "--data", str(data), "--backend", "inline", "--agents", "40"]
    argv += ["--min-shard-size", "1", "--trend", "none", "--components", "30", "--rounds", "2"]
    code, _, err = run([*argv, "--no-plots", "--out", str(tmp_path / "r")], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["stop"]["result_round"] == 1
    assert "the model is the starting point (round 1's consensus)" in err


def test_a_diverged_admm_run_points_to_float64_messages_before_more_bits(tmp_path, capsys):
    """statsmodels' stackloss table (21 rows; its last column, ACIDCONC, the output) over 2
    agents dealt with seed 2 diverges with 2-bit messages (with 8-bit and float64 ones it
    oscillates to the round cap); the hint names more bits and float64 messages, then a smaller
    --rho, so that it does not send the user from one --bits to the next."""
    from statsmodels.datasets import stackloss

    data = tmp_path / "stackloss.csv"
    stackloss.load_pandas().data.to_csv(data, index=False)
    argv = ["fit", "--data", str(data), "--agents", "2", "--min-shard-size", "5"]
    argv += ["--backend", "inline", "--bits", "2", "--seed", "2", "--no-plots"]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err
    assert "ADMM diverged" in err, err
    assert "(--bits 4) or --no-quantize; if float64 messages diverge too, a smaller --rho" in err


def test_a_quantisation_flag_replaces_the_config_files_choice(data_dir, tmp_path, capsys):
    """--bits, --delta and --no-quantize exclude each other: one given over a config file's
    delta or quantize: false replaces the file's choice (the flag was ignored while metrics.json
    recorded it), and metrics.json records only the quantisation that ran."""
    argv = ["fit", "--data", str(data_dir / "ale80.mat"), "--agents", "2", "--backend", "inline"]
    argv += ["--rounds", "3", "--components", "20", "--trend", "none", "--no-plots", "--quiet"]

    def ran(name: str, *flags: str, config: str | None = None) -> tuple[int, dict]:
        extra = list(flags)
        if config is not None:
            (tmp_path / f"{name}.yaml").write_text(config)
            extra += ["--config", str(tmp_path / f"{name}.yaml")]
        code, _, err = run([*argv, *extra, "--out", str(tmp_path / name)], capsys)
        assert code == 0, err
        metrics = json.loads((tmp_path / name / "metrics.json").read_text())
        return metrics["bits_sent"], metrics["config"]["consensus"]

    bits4 = ran("a", "--bits", "4")  # names of one length: --out's length counts in bits_sent
    assert bits4 == ran("b", "--bits", "4", config="consensus:\n  delta: 0.01\n")
    assert bits4 == ran("c", "--bits", "4", config="consensus:\n  quantize: false\n")
    _, delta = ran("d", "--delta", "0.01", config="consensus:\n  bits: 4\n")
    assert (delta["bits"], delta["delta"], delta["quantize"]) == (None, 0.01, True)
    _, float64 = ran("e", "--no-quantize", config="consensus:\n  delta: 0.01\n")
    assert (float64["bits"], float64["delta"], float64["quantize"]) == (None, None, False)


def test_a_builtin_model_matches_prediction_columns_by_name(tmp_path, capsys):
    """builtin:co2 has named columns (month, co2): a model fitted on it takes a CSV's columns by
    name, and a model of other columns does not predict at it by position. Its output column
    is accepted as --target, as predict accepts it."""
    out = tmp_path / "co2"
    fit = ["fit", "--data", "builtin:co2", "--target", "co2", "--trend", "linear"]
    fit += ["--components", "20"]
    assert run([*fit, "--no-plots", "--quiet", "--out", str(out)], capsys)[0] == 0
    month = np.arange(474.0, 479.0)
    data = _write_csv(tmp_path / "later.csv", ["co2", "month"], [month / 2 + 140, month])
    code, _, err = run(
        ["predict", "--model", str(out), "--data", str(data), "--out", str(tmp_path / "p")], capsys
    )
    assert code == 0, err
    rows = (tmp_path / "p" / "predictions.csv").read_text().splitlines()
    assert rows[0] == "month,mean,std,lower95,upper95,y"
    assert [float(r.split(",")[0]) for r in rows[1:]] == list(month)
    year = np.arange(1900.0, 1960.0)
    other = _write_csv(tmp_path / "other.csv", ["year", "volume"], [year, np.sin(year / 5)])
    assert (
        run(
            ["fit", "--data", str(other), "--no-plots", "--quiet", "--out", str(tmp_path / "o")],
            capsys,
        )[0]
        == 0
    )
    code, _, err = run(
        [
            "predict",
            "--model",
            str(tmp_path / "o"),
            "--data",
            "builtin:co2",
            "--out",
            str(tmp_path / "q"),
        ],
        capsys,
    )
    assert code == 2
    assert "builtin:co2 has the input(s) month, the model year; predict at a CSV file" in err
    predict = ["predict", "--model", str(out), "--data", "builtin:co2"]
    assert (
        run([*predict, "--target", "co2", "--quiet", "--out", str(tmp_path / "r")], capsys)[0] == 0
    )
    code, _, err = run([*predict, "--target", "month", "--out", str(tmp_path / "s")], capsys)
    assert (code, err.strip()) == (
        2,
        "distgp predict: error: builtin:co2's columns are month, co2 and its output is fixed "
        "(co2); set --target to co2 or drop it",
    )
    assert not (tmp_path / "s").exists()


def test_predict_refuses_a_target_for_a_file_without_named_columns(series_mat, tmp_path, capsys):
    """A .mat/.npz file's outputs are its arrays: --target names nothing there (it was ignored)."""
    model = tmp_path / "model"
    fit = ["fit", "--data", str(series_mat), "--trend", "linear", "--no-plots", "--quiet"]
    assert run([*fit, "--out", str(model)], capsys)[0] == 0
    predict = ["predict", "--model", str(model), "--data", str(series_mat), "--target", "y"]
    code, _, err = run([*predict, "--out", str(tmp_path / "p")], capsys)
    assert (code, err.strip()) == (
        2,
        f"distgp predict: error: --target names a CSV column, but {series_mat.name} has none: "
        "its outputs are its arrays; drop --target",
    )
    assert not (tmp_path / "p").exists()


def test_a_failure_of_the_ray_runtime_is_one_line_with_the_resume_hint(tmp_path, capsys):
    """Ray's own errors (its raylet or node died) end the command with distgp's line after
    Ray's story, exit status 1, and the resume hint where a checkpoint was written (it was a
    traceback)."""
    import argparse

    from distgp.checkpoint import Checkpoint
    from distgp.cli.common import run_command

    class RaySystemError(Exception):
        pass

    RaySystemError.__module__ = "ray.exceptions"
    checkpoint = Checkpoint(tmp_path)
    checkpoint.path.write_bytes(b"a checkpoint")  # only its presence matters here
    checkpoint.written = True  # as the run's own save marks it

    def lost(args):
        raise RaySystemError("\x1b[31mSystem error: the raylet died\x1b[0m\nmore of Ray's text")

    args = argparse.Namespace(command="fit", handler=lost, checkpoint=checkpoint, quiet=True)
    assert run_command(args) == 1
    err = capsys.readouterr().err.strip()
    assert err == (
        "distgp fit: error: the Ray runtime failed (RaySystemError: System error: the raylet "
        f"died); 'distgp fit --resume {tmp_path}' continues the run"
    )


def test_a_capped_admm_run_names_the_round_it_returns(data_dir, tmp_path, capsys):
    """At the round cap the model is the consensus of the lowest objective seen: metrics.json's
    stop gives that round's objective beside the last round's, and the stop line names it."""
    out = tmp_path / "run"
    args = ["fit", "--data", str(data_dir / "ale80.mat"), "--agents", "2", "--bits", "4"]
    args += ["--rounds", "30", "--backend", "inline", "--no-plots", "--out", str(out)]
    assert main(args) == 0
    stop = json.loads((out / "metrics.json").read_text())["stop"]
    history = pd.read_csv(out / "history.csv")
    lowest = history.loc[history["objective_at_z"].idxmin()]
    assert stop["result_round"] == lowest["round"] < 30
    assert stop["result_objective"] == pytest.approx(lowest["objective_at_z"], rel=1e-8)
    assert f"the model is round {stop['result_round']}'s consensus" in capsys.readouterr().err


def test_a_private_forecast_says_why_it_draws_no_figure(tmp_path, capsys):
    t = np.arange(60.0)
    frame = pd.DataFrame({"t": t, "y": np.sin(2 * np.pi * t / 12) + 0.05 * t})
    frame.to_csv(tmp_path / "series.csv", index=False)
    fit = ["fit", "--data", str(tmp_path / "series.csv"), "--agents", "2", "--backend", "inline"]
    fit += ["--rounds", "5", "--test-fraction", "0", "--no-plots", "--quiet"]
    assert main([*fit, "--out", str(tmp_path / "fit")]) == 0
    predict = ["predict", "--model", str(tmp_path / "fit"), "--ahead", "3"]
    assert main([*predict, "--out", str(tmp_path / "p")]) == 0
    assert "no forecast.png: a private model holds no training data" in capsys.readouterr().err
    assert not (tmp_path / "p" / "forecast.png").exists()


def test_a_model_loads_from_its_fit_folder(tmp_path):
    from distgp.exceptions import ModelFileError
    from distgp.gp import GSMPModel

    t = np.arange(40.0)
    pd.DataFrame({"t": t, "y": np.sin(t / 3)}).to_csv(tmp_path / "s.csv", index=False)
    fit = ["fit", "--data", str(tmp_path / "s.csv"), "--max-iterations", "5", "--no-plots"]
    assert main([*fit, "--quiet", "--out", str(tmp_path / "fit")]) == 0
    folder, file = GSMPModel.load(tmp_path / "fit"), GSMPModel.load(tmp_path / "fit" / "model.npz")
    assert np.array_equal(folder.weights, file.weights)
    with pytest.raises(ModelFileError, match=r"is a folder without a model\.npz"):
        GSMPModel.load(tmp_path)


def test_predict_at_an_npz_of_X_and_y_predicts_every_row(tmp_path):
    x = np.linspace(0.0, 10.0, 50)[:, None]
    np.savez(tmp_path / "points.npz", X=x, y=np.sin(x[:, 0]))
    X, y, _ = load_prediction_inputs(str(tmp_path / "points.npz"), dims=1)
    np.testing.assert_array_equal(X, x)
    np.testing.assert_array_equal(y, np.sin(x[:, 0]))


def test_predict_reads_only_the_test_split_or_the_inputs_of_a_mat_or_npz(tmp_path):
    x = np.linspace(0.0, 10.0, 20)[:, None]
    files = {
        "test_only.mat": dict(xtest=x, ytest=np.sin(x)),
        "constant_training.mat": dict(xtrain=x, ytrain=np.ones_like(x), xtest=x, ytest=np.sin(x)),
        "inputs_only.npz": dict(X=x),
    }
    for name, arrays in files.items():
        path = tmp_path / name
        if name.endswith(".npz"):
            np.savez(path, **arrays)
        else:
            scipy.io.savemat(path, arrays)
        X, y, _ = load_prediction_inputs(str(path), dims=1)
        np.testing.assert_array_equal(X, x)
        assert y is None if name == "inputs_only.npz" else np.allclose(y, np.sin(x[:, 0]))
    scipy.io.savemat(tmp_path / "training_only.mat", dict(xtrain=x, ytrain=np.sin(x)))
    with pytest.raises(InputDataError, match=r"predict reads the inputs xtest of a \.mat file"):
        load_prediction_inputs(str(tmp_path / "training_only.mat"), dims=1)


def test_folds_and_rounds_that_do_not_apply_are_noted_not_refused(tmp_path, capsys):
    """--folds 64 on data with two inputs (no K-fold choice runs) was refused as too many folds
    while --folds 3 was silently unused; --rounds with one agent was silently unused."""
    rng = np.random.default_rng(2)
    X = rng.uniform(size=(40, 2))
    data = _write_csv(tmp_path / "two.csv", ["a", "b", "y"], [X[:, 0], X[:, 1], X.sum(axis=1)])
    argv = ["fit", "--data", str(data), "--components", "20", "--backend", "inline"]
    code, _, err = run(
        [*argv, "--folds", "64", "--rounds", "5", "--no-plots", "--out", str(tmp_path / "o")],
        capsys,
    )
    assert code == 0, err
    assert (
        "--folds (tune.folds) does not apply: the default held-out choice runs on one input, "
        "these data have 2" in err
    )
    assert "--rounds (consensus.max_rounds) does not apply" in err
    code, _, err = run(
        [*argv, "--folds", "64", "--tune", "4", "--out", str(tmp_path / "t")], capsys
    )
    assert code == 2 and "set tune.folds (--folds) to at most" in err


def test_a_forecast_whose_first_step_cannot_be_drawn_writes_no_figure(
    series_mat, tmp_path, capsys, monkeypatch
):
    """It drew an empty forecast.png (its first 0 steps)."""
    model = tmp_path / "model"
    fit = ["fit", "--data", str(series_mat), "--trend", "linear"]
    assert run([*fit, "--no-plots", "--quiet", "--out", str(model)], capsys)[0] == 0
    monkeypatch.setattr("distgp.plots.drawable", lambda mean, lower, upper: mean < -np.inf)
    out = tmp_path / "ahead"
    code, _, err = run(
        ["predict", "--model", str(model), "--ahead", "3", "--out", str(out)], capsys
    )
    assert code == 0, err
    assert "no forecast.png: the mean or the 95% interval of its first step" in err
    assert sorted(p.name for p in out.iterdir()) == ["predictions.csv"]


def test_a_forecast_past_float64s_range_draws_only_its_drawable_part(tmp_path, capsys):
    """--ahead far past an exponential series: the rows past float64's range are written as inf;
    forecast.png shows the steps it can draw, says so, and matplotlib's axis arithmetic warns
    of no overflow."""
    import warnings

    t = np.arange(60.0)
    data = tmp_path / "growth.csv"
    data.write_text(
        "t,y\n" + "".join(f"{a},{np.exp(0.3 * a) * (1 + 0.05 * np.sin(a))}\n" for a in t)
    )
    model = tmp_path / "model"
    fit = ["fit", "--data", str(data), "--transform", "log", "--trend", "linear"]
    assert (
        run([*fit, "--test-fraction", "0", "--no-plots", "--quiet", "--out", str(model)], capsys)[0]
        == 0
    )
    out = tmp_path / "forecast"
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        code, _, err = run(
            ["predict", "--model", str(model), "--ahead", "5000", "--out", str(out)], capsys
        )
    assert code == 0, err
    assert [str(w.message) for w in seen] == []
    assert "of the 5000 predictions pass float64's range" in err
    drawn = re.search(
        r"forecast\.png \(its first (\d+) steps: the mean or the 95% interval of the rest is "
        r"too large to draw\)",
        err,
    )
    assert drawn is not None, err
    rows = pd.read_csv(out / "predictions.csv")
    largest = rows[["mean", "lower95", "upper95"]].abs().max(axis=1).to_numpy()
    steps = int(drawn[1])
    assert np.all(largest[:steps] < 1e300) and not largest[steps] < 1e300


def test_metrics_season_is_the_period_in_input_units_without_round_off():
    from types import SimpleNamespace

    from distgp.cli.fit import season_in_input_units

    scale = 1.118811881188119  # (12 / scale) * scale == 12.000000000000002
    model = SimpleNamespace(
        trend=SimpleNamespace(season=12.0 / scale), scaler=SimpleNamespace(x_scale=[scale])
    )
    assert season_in_input_units(model) == 12.0
    assert season_in_input_units(SimpleNamespace(trend=None)) == 0.0


def test_no_command_writes_into_another_commands_folder(tmp_path, capsys):
    """optimize over a fit's folder replaced the fit's history.csv beside its model.npz, and fit
    left an optimisation's result.json or a prediction's predictions.csv beside its own outputs:
    fit, optimize and predict now refuse each other's folders (and predict an unfinished run's)
    in one line, exit 2, writing nothing, and still run again into their own."""
    from distgp.checkpoint import Checkpoint
    from distgp.config import FitConfig

    commands = {
        "fit": ["fit", "--data", "builtin:co2", "--components", "100", "--trend", "linear"],
        "optimize": ["optimize", "--budget", "6"],
        "predict": ["predict", "--model", str(tmp_path / "fit"), "--ahead", "3"],
    }
    for name, argv in commands.items():
        assert main([*argv, "--quiet", "--out", str(tmp_path / name)]) == 0, name
    Checkpoint(tmp_path / "unfinished").save(FitConfig(), {})
    markers = {
        "fit": "model.npz",
        "optimize": "result.json",
        "predict": "predictions.csv",
        "unfinished": "checkpoint.npz",
    }
    capsys.readouterr()
    for command, argv in commands.items():
        for holder, marker in markers.items():
            if holder == command or (holder == "unfinished" and command != "predict"):
                continue  # a fit's or optimisation's checkpoint: refused by its kind, or resumed
            folder = tmp_path / holder
            before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
            assert main([*argv, "--quiet", "--out", str(folder)]) == 2, (command, holder)
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and f"--out {folder} holds " in err, err
            assert f"({marker})" in err and err.endswith("; choose another folder\n"), err
            assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before
        assert main([*argv, "--quiet", "--out", str(tmp_path / command)]) == 0, command
        capsys.readouterr()  # optimize says it replaces its earlier run, even with --quiet
