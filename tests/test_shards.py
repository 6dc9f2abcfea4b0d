"""Shard files read by their agents: the driver never opens them, the model holds no training
point, and bad shards are one-line errors with exit status 2 and nothing written."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from distgp.cli import main
from distgp.config import FitConfig
from distgp.gp import GSMPModel
from distgp.io import read_npz
from tests.helpers import smooth_regression

SITES = 3
PER_SITE = 30


def write_sites(folder, sizes=(PER_SITE,) * SITES, columns=("a", "b", "y")):
    """One CSV per site plus a test file; returns (all training X, all training y)."""
    X, y = smooth_regression(n=sum(sizes) + 20, dims=2, seed=3)
    start = 0
    for j, size in enumerate(sizes):
        part = slice(start, start + size)
        frame = pd.DataFrame({columns[0]: X[part, 0], columns[1]: X[part, 1], columns[2]: y[part]})
        frame.to_csv(folder / f"site-{j}.csv", index=False)
        start += size
    test = pd.DataFrame({"a": X[start:, 0], "b": X[start:, 1], "y": y[start:]})
    test.to_csv(folder / "test.csv", index=False)
    return X[:start], y[:start]


def fit_args(folder, out, *extra, backend="inline"):
    return [
        "fit",
        "--shards",
        str(folder / "site-*.csv"),
        "--target",
        "y",
        "--test",
        str(folder / "test.csv"),
        "--components",
        "40",
        "--rounds",
        "6",
        "--backend",
        backend,
        "--no-plots",
        "--quiet",
        "--out",
        str(out),
        *extra,
    ]


def test_agents_read_their_own_files_and_the_driver_never_does(tmp_path, ray_local, monkeypatch):
    X, y = write_sites(tmp_path)
    opened = []
    real = pd.read_csv

    def spy(path, *args, **kwargs):
        opened.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(pd, "read_csv", spy)  # this process only: the agents run in Ray actors
    out = tmp_path / "out"
    assert main(fit_args(tmp_path, out, backend="ray")) == 0
    assert opened == [str(tmp_path / "test.csv")]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["agents"] == SITES and metrics["n_train"] == SITES * PER_SITE
    assert metrics["prediction"] == "private" and metrics["n_test"] == 20
    model = read_npz(out / "model.npz")
    assert "X_train" not in model and "y_train" not in model
    for key, value in model.items():
        if np.asarray(value).dtype.kind == "f":
            assert not np.isin(value, y).any() and not np.isin(value, X).any(), key


@pytest.mark.parametrize(
    "setup,extra,message",
    [
        ("missing", (), "agent 1 on node local: cannot read shard file"),
        ("columns", (), "every shard needs the same input columns"),
        ("small", (), "(shard file site-1.csv): the shard holds 4 point(s), below the minimum"),
        ("ok", ("--predict", "pooled"), "pooled prediction needs the training data"),
        ("ok", ("--tune", "1"), "tune.budget must be at least 2 evaluations"),
        ("ok", ("--tune", "4", "--transform", "log"), "output transforms need the training"),
        ("ok", ("--season", "12"), "a season needs the series' step"),
        ("ok", ("--tune", "4", "--tunables", "trend,speed"), "unknown tunable"),
        ("ok", ("--data", "x.csv"), "drop data.source (data.test names the driver's"),
        ("ok", ("--test-fraction", "0.3"), "data.test_fraction splits a data.source file"),
        ("ok", ("--shard", "contiguous"), "drop data.shard (data.test"),
    ],
)
def test_bad_shards_are_one_line_errors_and_nothing_is_written(
    tmp_path, capsys, monkeypatch, setup, extra, message
):
    sizes = (PER_SITE, 4, PER_SITE) if setup == "small" else (PER_SITE,) * SITES
    write_sites(tmp_path, sizes)
    if setup == "columns":
        frame = pd.read_csv(tmp_path / "site-2.csv").rename(columns={"b": "c"})
        frame.to_csv(tmp_path / "site-2.csv", index=False)
    shards = str(tmp_path / "site-*.csv")
    if setup == "missing":
        shards = ",".join(str(tmp_path / name) for name in ("site-0.csv", "gone.csv", "site-2.csv"))
    if setup == "small":  # the agent's error names its file: a glob does not tell which it is
        monkeypatch.chdir(tmp_path)
        shards = "site-*.csv"
    args = fit_args(tmp_path, tmp_path / "out", *extra)
    args[args.index("--shards") + 1] = shards
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def degenerate_site(folder, which: str, sites=(1,)) -> None:
    """Make the given sites' outputs constant (``outputs``) or their inputs one point
    (``inputs``), as a saturated process or a sensor at one place would give."""
    for j in sites:
        frame = pd.read_csv(folder / f"site-{j}.csv")
        if which == "outputs":
            frame["y"] = 0.7
        else:
            frame[["a", "b"]] = [0.25, -0.5]
        frame.to_csv(folder / f"site-{j}.csv", index=False)


@pytest.mark.parametrize("which", ["outputs", "inputs"])
def test_a_site_with_constant_outputs_or_one_input_point_fits_beside_others(tmp_path, which):
    """Whether the data vary is a question about every shard together: a site's constant
    outputs or one input point were refused by its agent ('nothing to learn', 'add an input
    that varies'), though the same rows sharded by column from one file fit."""
    write_sites(tmp_path)
    degenerate_site(tmp_path, which)
    out = tmp_path / "out"
    assert main(fit_args(tmp_path, out)) == 0
    sharded = json.loads((out / "metrics.json").read_text())
    pooled = pd.concat(
        [pd.read_csv(tmp_path / f"site-{j}.csv").assign(site=j) for j in range(SITES)]
    )
    pooled.to_csv(tmp_path / "pooled.csv", index=False)
    args = fit_args(tmp_path, tmp_path / "columns", "--shard", "column:site", "--agents", "3")
    at = args.index("--shards")
    args[at : at + 2] = ["--data", str(tmp_path / "pooled.csv")]
    assert main(args) == 0
    by_column = json.loads((tmp_path / "columns" / "metrics.json").read_text())
    assert sharded["n_train"] == by_column["n_train"] == SITES * PER_SITE
    assert sharded["mse"] == pytest.approx(by_column["mse"], rel=1e-6)


@pytest.mark.parametrize(
    "which,message",
    [
        (
            "outputs",
            "training outputs y of all shard files together take a single value (0.7); there "
            "is nothing to learn from them: give data whose outputs vary",
        ),
        (
            "inputs",
            "training inputs X of all shard files together take a single value in every "
            "column; there is nothing to learn from them: add an input that varies",
        ),
    ],
)
def test_shards_constant_all_together_are_refused(tmp_path, capsys, which, message):
    write_sites(tmp_path)
    degenerate_site(tmp_path, which, range(SITES))
    assert main(fit_args(tmp_path, tmp_path / "out")) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"distgp fit: error: {message}", err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("pinned", ["", "@rack"])
def test_a_shard_file_listed_twice_is_refused(tmp_path, capsys, monkeypatch, pinned):
    """The same file twice ran two agents on it, its data counted twice in the evidence."""
    write_sites(tmp_path)
    monkeypatch.chdir(tmp_path)
    args = fit_args(tmp_path, tmp_path / "out")
    args[args.index("--shards") + 1] = f"site-0.csv{pinned},site-1.csv,./site-0.csv{pinned}"
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "distgp fit: error: --shards lists the shard file site-0.csv twice (as site-0.csv and "
        "./site-0.csv): two agents would count its data twice; give each file once"
    )
    assert not (tmp_path / "out").exists()


def test_shard_files_holding_the_same_data_are_warned_of(tmp_path, capsys):
    """Other names, one content: the agents' digests show it."""
    write_sites(tmp_path)
    (tmp_path / "copy.csv").write_bytes((tmp_path / "site-1.csv").read_bytes())
    args = fit_args(tmp_path, tmp_path / "out")
    args.remove("--quiet")
    files = [tmp_path / "site-0.csv", tmp_path / "site-1.csv", tmp_path / "copy.csv"]
    args[args.index("--shards") + 1] = ",".join(map(str, files))
    assert main(args) == 0
    err = capsys.readouterr().err
    assert (
        f"warning: shard files {files[1]}, {files[2]} hold the same data (one SHA-256 digest): "
        "the fit counts it 2 times; give each agent its own shard" in err
    ), err


def test_folds_on_shard_files_without_tune_are_noted_as_unused(tmp_path, capsys):
    write_sites(tmp_path)
    args = fit_args(tmp_path, tmp_path / "out")
    args.remove("--quiet")
    assert main([*args, "--folds", "3"]) == 0
    assert (
        "--folds (tune.folds) does not apply: shard files get no default held-out choice (the "
        "driver holds no data); --tune BUDGET scores settings on folds" in capsys.readouterr().err
    )


@pytest.mark.parametrize("backend", ["ray", "inline"])
def test_tuning_over_shard_files_is_scored_by_their_agents(backend, tmp_path, request, monkeypatch):
    """``--tune`` with shard files: each agent scores the candidates on its own file, the
    driver reads only the test file, and the choice and its history reach the output folder
    (in process too: one agent per shard, no copies)."""
    if backend == "ray":
        request.getfixturevalue("ray_local")
    write_sites(tmp_path)
    opened = []
    real = pd.read_csv

    def spy(path, *args, **kwargs):
        opened.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(pd, "read_csv", spy)
    out = tmp_path / "out"
    # in process a batch of two per shard still runs on one agent per shard
    batch = "2" if backend == "ray" else "6"
    extra = ("--tune", "4", "--tune-batch", batch, "--tunables", "trend,noise_floor,transform")
    assert main(fit_args(tmp_path, out, *extra, backend=backend)) == 0
    if backend == "ray":  # in process, the agents' reads are this process's too
        assert opened == [str(tmp_path / "test.csv")]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["tune_evaluations"] == 4 and metrics["agents"] == SITES
    rows = (out / "tune.csv").read_text().splitlines()[1:]
    assert len(rows) == 4
    chosen = [row for row in rows if row.rsplit(",", 2)[1] == "yes"]
    assert len(chosen) == 1 and metrics["tune_chosen"]["setting"] in chosen[0]
    assert not any("transform" in row for row in rows)  # outputs never reach the driver
    assert metrics["transform"] == "none" and metrics["mse"] is not None


def test_agents_tell_the_driver_whether_their_shards_are_a_series(tmp_path):
    """A series dealt over shard files (every other point) is validated by rolling origin;
    scattered 2-D points by folds."""
    from distgp.agents.agent import ShardFile
    from distgp.agents.backends import InlineBackend
    from distgp.config import FitConfig
    from distgp.tune import _shard_facts

    t = np.arange(40.0)
    for j in range(2):
        frame = pd.DataFrame({"t": t[j::2], "y": np.sin(t[j::2] / 3)})
        frame.to_csv(tmp_path / f"series-{j}.csv", index=False)
    write_sites(tmp_path)
    for pattern, series, dims in (("series-*.csv", True, 1), ("site-*.csv", False, 2)):
        files = sorted(tmp_path.glob(pattern))
        backend = InlineBackend()
        backend.start([ShardFile(str(f)) for f in files])
        facts, sizes = _shard_facts(backend, FitConfig(), len(files))
        assert (facts.series, facts.dims, facts.positive) == (series, dims, False)
        assert facts.n == sum(sizes) and len(sizes) == len(files)


def test_a_placement_no_node_has_is_refused(tmp_path, ray_local, capsys):
    write_sites(tmp_path)
    args = fit_args(tmp_path, tmp_path / "out", backend="ray")
    args[args.index("--shards") + 1] = f"{tmp_path / 'site-*.csv'}@rack_on_the_moon"
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "no node of the Ray cluster has the resources" in err and "rack_on_the_moon" in err


def test_private_model_predicts_through_rebuilt_agents(tmp_path):
    write_sites(tmp_path)
    out = tmp_path / "out"
    assert main(fit_args(tmp_path, out)) == 0
    predicted = tmp_path / "predicted"
    test = str(tmp_path / "test.csv")
    assert (
        main(
            [
                "predict",
                "--model",
                str(out / "model.npz"),
                "--data",
                test,
                "--out",
                str(predicted),
                "--quiet",
            ]
        )
        == 0
    )
    metrics = json.loads((out / "metrics.json").read_text())
    frame = pd.read_csv(predicted / "predictions.csv")
    truth = pd.read_csv(test)["y"].to_numpy()
    assert np.mean((frame["mean"].to_numpy() - truth) ** 2) == pytest.approx(
        metrics["mse"], rel=1e-6
    )
    # the model records the shards' column names: a file with its columns in another order
    # is read by name, as for a model fitted on one CSV
    model = GSMPModel.load(out / "model.npz")
    assert model.input_names == ("a", "b") and model.target_name == "y"
    reordered = tmp_path / "reordered.csv"
    pd.read_csv(test)[["y", "b", "a"]].to_csv(reordered, index=False)
    again = tmp_path / "again"
    argv = ["predict", "--model", str(out), "--data", str(reordered), "--out", str(again)]
    assert main([*argv, "--quiet"]) == 0
    assert pd.read_csv(again / "predictions.csv")["mean"].tolist() == frame["mean"].tolist()


def test_a_model_of_relative_shard_paths_predicts_from_another_folder(tmp_path, monkeypatch):
    """The model records the shard files as absolute paths (a ``$VAR`` path as written)."""
    from distgp.driver import located

    write_sites(tmp_path)
    monkeypatch.chdir(tmp_path)
    args = fit_args(tmp_path, tmp_path / "out")
    args[args.index("--shards") + 1] = "site-*.csv"
    assert main(args) == 0
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    predict = ["predict", "--model", "../out", "--data", "../test.csv", "--out", "p", "--quiet"]
    assert main(predict) == 0
    assert len(pd.read_csv(tmp_path / "elsewhere" / "p" / "predictions.csv")) == 20
    config = FitConfig()
    config.data.shards = ["$NODE_DATA/site-0.csv", "~/site-1.csv", "test.csv"]
    monkeypatch.chdir(tmp_path)
    shards = located(config).data.shards
    assert shards == ["$NODE_DATA/site-0.csv", "~/site-1.csv", str(tmp_path / "test.csv")]


def test_shard_files_default_to_the_ray_backend_even_one():
    """One shard file defaulted to the inline backend, whose agent runs in the driver's process:
    the driver opened the file that only its agent should read."""
    from distgp.config import FitConfig

    config = FitConfig()
    assert config.backend_name == "inline"
    config.data.shards = ["site-0.csv"]
    assert config.backend_name == "ray"
    config.backend.name = "inline"  # asked for: the simulation, which says so
    assert config.backend_name == "inline"


def test_one_shard_file_is_fitted_and_predicted_privately(tmp_path, capsys):
    write_sites(tmp_path)
    args = fit_args(tmp_path, tmp_path / "out")
    args[args.index("--shards") + 1] = str(tmp_path / "site-0.csv")
    args.remove("--quiet")
    assert main(args) == 0
    assert (
        "1 shard files, read by their agents in this process (the inline" in capsys.readouterr().err
    )
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["agents"] == 1 and metrics["prediction"] == "private"
    predict = ["predict", "--model", str(tmp_path / "out"), "--data", str(tmp_path / "test.csv")]
    assert main([*predict, "--out", str(tmp_path / "p"), "--quiet"]) == 0
    predicted = json.loads((tmp_path / "p" / "metrics.json").read_text())
    assert predicted["mse"] == pytest.approx(metrics["mse"], rel=1e-9)
    # the agent tells a file that changed since the fit (here its outputs shuffled)
    site = pd.read_csv(tmp_path / "site-0.csv")
    site["y"] = site["y"].sample(frac=1.0, random_state=0).to_numpy()
    site.to_csv(tmp_path / "site-0.csv", index=False)
    assert main([*predict, "--out", str(tmp_path / "q"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "shard file(s) changed since the fit, so they do not give the data" in err
    assert f"{tmp_path / 'site-0.csv'} (agent 0)" in err
    assert not (tmp_path / "q").exists()


def test_a_private_model_asks_only_the_agents_that_stayed_in_its_fit(tmp_path):
    """An agent that left the fit (its node or file lost) is no expert of the model: prediction
    neither needs its file nor counts it (it was brought back once its file returned, and the
    predictions then disagreed with the fit's)."""
    from distgp.driver import predict_with_agents

    write_sites(tmp_path)
    out = tmp_path / "out"
    assert main(fit_args(tmp_path, out)) == 0
    model = GSMPModel.load(out / "model.npz")
    assert model.members is None and len(model.shard_digests) == SITES
    X = pd.read_csv(tmp_path / "test.csv")[["a", "b"]].to_numpy()
    everyone = predict_with_agents(model, X)[0]
    model.members = [1, 2]  # as a fit in which agent 0 left records it
    model.save(out / "stayed.npz")
    (tmp_path / "site-0.csv").rename(tmp_path / "gone.csv")
    stayed = predict_with_agents(GSMPModel.load(out / "stayed.npz"), X)[0]
    assert np.all(np.isfinite(stayed)) and not np.allclose(stayed, everyone)
    (tmp_path / "gone.csv").rename(tmp_path / "site-0.csv")
    assert np.array_equal(predict_with_agents(GSMPModel.load(out / "stayed.npz"), X)[0], stayed)


def test_private_model_refuses_a_data_source_that_changed(tmp_path, capsys):
    X, y = smooth_regression(n=80, dims=2, seed=4)
    data = tmp_path / "data.csv"
    pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "y": y}).to_csv(data, index=False)
    out = tmp_path / "out"
    common = ["--components", "30", "--rounds", "4", "--backend", "inline", "--quiet"]
    assert (
        main(
            [
                "fit",
                "--data",
                str(data),
                "--agents",
                "2",
                "--no-plots",
                "--out",
                str(out),
                *common[:-1],
            ]
        )
        == 0
    )
    pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "y": y + 1.0}).to_csv(data, index=False)
    code = main(
        [
            "predict",
            "--model",
            str(out / "model.npz"),
            "--data",
            str(data),
            "--out",
            str(tmp_path / "p"),
            "--quiet",
        ]
    )
    assert code == 2
    assert "does not give the data this model's agents were fitted on" in capsys.readouterr().err


def test_shards_holding_the_same_columns_in_another_order_give_the_same_fit(tmp_path):
    """Shard files are matched by column name, as --test files and predict inputs are: a site
    that wrote its columns in another order is asked to take them in the first shard's."""
    write_sites(tmp_path)
    first = tmp_path / "first"
    assert main(fit_args(tmp_path, first)) == 0
    frame = pd.read_csv(tmp_path / "site-1.csv")
    frame[["y", "b", "a"]].to_csv(tmp_path / "site-1.csv", index=False)
    swapped = tmp_path / "swapped"
    assert main(fit_args(tmp_path, swapped)) == 0
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (first, swapped))
    assert b["mse"] == pytest.approx(a["mse"], rel=1e-9)
    assert b["objective"] == pytest.approx(a["objective"], rel=1e-9)
    predicted = tmp_path / "predicted"
    predict = ["predict", "--model", str(swapped), "--data", str(tmp_path / "test.csv")]
    assert main([*predict, "--out", str(predicted), "--quiet"]) == 0
    mean = pd.read_csv(predicted / "predictions.csv")["mean"].to_numpy()
    truth = pd.read_csv(tmp_path / "test.csv")["y"].to_numpy()
    assert np.mean((mean - truth) ** 2) == pytest.approx(b["mse"], rel=1e-6)


def test_a_test_file_is_matched_to_the_shards_by_column_name(tmp_path):
    """The --test file of a shard fit is read once the agents have told their columns: one
    with its columns in another order scores the same (it was read by position)."""
    write_sites(tmp_path)
    first = tmp_path / "first"
    assert main(fit_args(tmp_path, first)) == 0
    test = pd.read_csv(tmp_path / "test.csv")
    test[["b", "y", "a"]].to_csv(tmp_path / "test.csv", index=False)
    swapped = tmp_path / "swapped"
    assert main(fit_args(tmp_path, swapped)) == 0
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (first, swapped))
    assert b["mse"] == pytest.approx(a["mse"], rel=1e-12)


def write_dated_sites(folder, first_days=(1, 1)):
    """Two sites of a monthly series (dates on day ``first_days[j]`` of the month) and a test
    file of the months after them."""
    months = pd.date_range("2001-01-01", periods=60, freq="MS")
    y = 10 + 0.1 * np.arange(60) + np.sin(2 * np.pi * np.arange(60) / 12)
    for j, day in enumerate(first_days):
        part = slice(24 * j, 24 * (j + 1))
        dates = months[part] + pd.Timedelta(days=day - 1)
        pd.DataFrame({"date": dates.strftime("%Y-%m-%d"), "y": y[part]}).to_csv(
            folder / f"site-{j}.csv", index=False
        )
    pd.DataFrame({"date": months[48:].strftime("%Y-%m-%d"), "y": y[48:]}).to_csv(
        folder / "test.csv", index=False
    )


def test_shards_of_dates_agree_on_their_unit_and_the_model_keeps_it(tmp_path, capsys):
    write_dated_sites(tmp_path)
    out = tmp_path / "out"
    assert main(fit_args(tmp_path, out)) == 0
    model = GSMPModel.load(out / "model.npz")
    assert model.time_units == {"date": "month"}
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["mse"] < 1.0 and metrics["time_units"] == {"date": "month"}
    # a site that measured weekly beside a monthly one: both count their dates in weeks
    weekly = pd.read_csv(tmp_path / "site-1.csv")
    weekly["date"] = pd.date_range("2003-01-05", periods=len(weekly), freq="W").strftime("%Y-%m-%d")
    weekly.to_csv(tmp_path / "site-1.csv", index=False)
    assert main(fit_args(tmp_path, tmp_path / "mixed")) == 0
    assert GSMPModel.load(tmp_path / "mixed" / "model.npz").time_units == {"date": "week"}
    # numbers in one shard, dates in the other: refused
    numbers = pd.read_csv(tmp_path / "site-1.csv")
    numbers["date"] = np.arange(len(numbers), dtype=float)
    numbers.to_csv(tmp_path / "site-1.csv", index=False)
    assert main(fit_args(tmp_path, tmp_path / "numbers")) == 2
    assert (
        "column date holds numbers in the shard of agent 1 but dates in agent 0's"
        in capsys.readouterr().err
    )
    assert not (tmp_path / "numbers").exists()


def test_a_one_input_shard_fit_with_a_test_file_writes_its_plots(tmp_path, capsys):
    """The driver of a shard fit holds no training points to draw: prediction.png is left out
    (drawing it crashed after the fit, leaving a checkpoint and no metrics.json). It says that
    its trend was not chosen on held-out data (a series through --data would be)."""
    write_dated_sites(tmp_path)
    args = [a for a in fit_args(tmp_path, tmp_path / "out") if a not in ("--no-plots", "--quiet")]
    assert main(args) == 0
    assert "no held-out choice of the model: shard files are scored only by --tune" in (
        capsys.readouterr().err
    )
    written = {p.name for p in (tmp_path / "out").iterdir()}
    assert {"metrics.json", "spectrum.png"} <= written and "checkpoint.npz" not in written


def test_a_rebuilt_agent_takes_its_file_as_the_run_did_and_refuses_a_changed_one(tmp_path):
    """An agent restarted during a run reads its shard file again: it takes the columns in the
    run's order and its dates in the run's unit, and refuses a file that changed since the run
    started (it was used silently: the rest of the fit learnt from other data)."""
    from distgp.agents.agent import Agent, ShardFile
    from distgp.agents.summaries import shard_view
    from distgp.exceptions import InputDataError

    write_dated_sites(tmp_path)
    frame = pd.read_csv(tmp_path / "site-1.csv")
    frame[["y", "date"]].to_csv(tmp_path / "site-1.csv", index=False)  # another column order
    shard = ShardFile(str(tmp_path / "site-1.csv"), target="y")
    first = Agent(1, shard).summary(1, ["date"], {"date": "day"})  # the run's unit: days
    rebuilt = Agent(1, shard)
    setup = ({"x_mean": [0.0], "x_scale": [1.0], "y_mean": 0.0, "y_scale": 1.0}, None, None)
    view = shard_view(first)
    assert rebuilt.summary(1, view["columns"], view["time_units"])["digest"] == view["digest"]
    frame.assign(y=frame["y"] + 1.0).to_csv(tmp_path / "site-1.csv", index=False)
    with pytest.raises(InputDataError, match="the shard of agent 1 changed since the run started"):
        Agent(1, shard).setup(*setup, view)


def test_a_config_files_shards_are_read_as_the_flags_are(tmp_path, capsys):
    """data.shards in a config file: globs expanded, NAME@RESOURCE split into placements and
    one agent per file unless the agent count is set, as with --shards (the file's list was
    used as written: a glob was a file name and there was one agent)."""
    from distgp.cli import build_parser
    from distgp.cli.fit import _config

    write_sites(tmp_path)
    glob = str(tmp_path / "site-*.csv")
    config = tmp_path / "shards.yaml"

    def resolved(yaml_text: str, *flags: str):
        config.write_text(yaml_text)
        args = build_parser().parse_args(["fit", "--config", str(config), *flags])
        return _config(args)

    files = [str(tmp_path / f"site-{j}.csv") for j in range(SITES)]
    for pinned, placements in ((glob, None), (f"{glob}@rack", ["rack"] * SITES)):
        from_file = resolved(f"data:\n  shards: ['{pinned}']\n")
        from_flag = resolved("{}\n", "--shards", pinned)
        assert from_file == from_flag
        assert from_file.data.shards == files and from_file.data.placements == placements
        assert from_file.consensus.agents == SITES
    assert resolved(f"data:\n  shards: ['{glob}']\nconsensus:\n  agents: 2\n").consensus.agents == 2
    assert resolved(f"data:\n  shards: ['{glob}']\n", "--agents", "2").consensus.agents == 2
    args = fit_args(tmp_path, tmp_path / "out")
    args[args.index("--shards") : args.index("--shards") + 2] = ["--config", str(config)]
    config.write_text(f"data:\n  shards: ['{glob}']\n")
    assert main(args) == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["agents"] == SITES


@pytest.mark.parametrize(
    "yaml_text,message",
    [
        ("data:\n  placements: [rack]\n", "data.placements pins shard files, but data.shards"),
        (
            "data:\n  shards: ['{folder}/site-0.csv@rack']\n  placements: [rack]\n",
            "data.placements and NAME@RESOURCE in data.shards both pin shard files",
        ),
        ("data:\n  shards: ['{folder}/none-*.csv']\n", "data.shards pattern '"),
    ],
)
def test_bad_shards_of_a_config_file_are_one_line_errors(tmp_path, capsys, yaml_text, message):
    write_sites(tmp_path)
    (tmp_path / "c.yaml").write_text(yaml_text.format(folder=tmp_path))
    out = tmp_path / "out"
    assert main(["fit", "--config", str(tmp_path / "c.yaml"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not out.exists()


def test_tuning_on_shard_files_counts_the_scoring_agents_set_up(tmp_path, monkeypatch):
    """--tune on shard files: the scoring agents' shard specs and summaries crossed before the
    first batch and were counted neither in bits_sent nor in bits_sent_held_out."""
    import distgp.driver

    write_sites(tmp_path)
    made = []
    original = distgp.driver.make_run_backend

    def recorded(config):
        backend = original(config)
        if not made:  # the run's own backend, not those of fits nested in agents
            backend.recorder = []
            made.append(backend)
        return backend

    monkeypatch.setattr(distgp.driver, "make_run_backend", recorded)
    args = fit_args(tmp_path, tmp_path / "out", "--tune", "2", "--tune-batch", "2")
    assert main(args) == 0
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    crossed = 8 * sum(len(data) for _, _, data in made[0].recorder)
    assert metrics["bits_sent"] + metrics["bits_sent_held_out"] == crossed


@pytest.mark.parametrize(
    "entry,split",
    [
        ("/data/x@y/site-0.csv", ("/data/x@y/site-0.csv", "")),  # '@' in a folder's name
        ("/data/x@y/site-0.csv@rack", ("/data/x@y/site-0.csv", "rack")),  # the last '@'
        ("$DIR/a.csv@site_a+gpu", ("$DIR/a.csv", "site_a+gpu")),
        ("/data/a@b.csv@", ("/data/a@b.csv", "")),  # a trailing '@' ends the path
        ("/data/a.csv", ("/data/a.csv", "")),
    ],
)
def test_a_shard_path_may_hold_an_at_sign(entry, split):
    """PATH@RESOURCE splits at the last '@', and only before a plain resource name."""
    from distgp.cli.fit import split_placement

    assert split_placement(entry) == split


def test_shard_files_in_a_folder_with_an_at_sign_are_read(tmp_path, capsys):
    """A folder named like ``x@y`` was split as PATH@RESOURCE ('cannot read shard file .../x')."""
    folder = tmp_path / "x@y"
    folder.mkdir()
    write_sites(folder)
    listed = ",".join(str(folder / f"site-{j}.csv") for j in range(SITES))
    args = fit_args(folder, tmp_path / "out")
    args[args.index("--shards") + 1] = listed
    assert main(args) == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["agents"] == SITES


def test_a_glob_that_matches_nothing_says_the_driver_expands_it(tmp_path, capsys):
    write_sites(tmp_path)
    args = fit_args(tmp_path, tmp_path / "out")
    args[args.index("--shards") + 1] = "$NODE_DIR/site-*.csv"
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "expanded by the driver" in err and "node-local files one by one" in err, err


def closed_port() -> int:
    """A local TCP port nothing listens on."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("how", ["recorded", "given"])
def test_predict_on_a_cluster_that_is_gone_fails_in_seconds(tmp_path, capsys, how):
    """A private shard model whose cluster does not answer: one line naming the address and
    --address, exit 2, within seconds (Ray's connect retried ~14 minutes, holding Ctrl-C)."""
    import time

    write_sites(tmp_path)
    out = tmp_path / "out"
    assert main(fit_args(tmp_path, out)) == 0
    address = f"127.0.0.1:{closed_port()}"
    predict = ["predict", "--model", str(out), "--data", str(tmp_path / "test.csv"), "--quiet"]
    predict += ["--out", str(tmp_path / "p")]
    if how == "recorded":  # the fit's own cluster, gone since
        model = GSMPModel.load(out / "model.npz")
        config = json.loads(model.run_config)
        config["backend"] = {**config["backend"], "name": "ray", "address": address}
        model.run_config = json.dumps(config)
        model.save(out / "model.npz")
    else:
        predict += ["--address", address]
    capsys.readouterr()
    tic = time.perf_counter()
    assert main(predict) == 2
    assert time.perf_counter() - tic < 15
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert f"cannot reach the Ray cluster at {address}" in err and "--address" in err, err


def test_predict_address_is_refused_for_a_model_that_needs_no_cluster(tmp_path, capsys):
    out = tmp_path / "pooled"
    args = ["fit", "--data", "builtin:co2", "--components", "10", "--rounds", "2", "--no-plots"]
    assert main([*args, "--quiet", "--out", str(out)]) == 0
    predict = ["predict", "--model", str(out), "--data", "builtin:co2", "--quiet"]
    assert main([*predict, "--out", str(tmp_path / "p"), "--address", "127.0.0.1:6379"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "drop --address" in err, err


def test_predict_rebuilds_ray_agents_with_the_fits_cpu_share_and_round_timeout():
    """The fit's backend.cpus_per_agent and round_timeout reach predict's Ray agents."""
    from distgp.agents.agent import ShardFile
    from distgp.driver import _prediction_backend

    config = FitConfig()
    config.data.shards = ["a.csv", "b.csv"]
    config.backend.cpus_per_agent, config.backend.round_timeout = 0.5, 42.0
    backend = _prediction_backend(config, [ShardFile("a.csv"), ShardFile("b.csv")])
    assert backend.name == "ray"
    assert (backend.cpus_per_agent, backend.round_timeout) == (0.5, 42.0)
