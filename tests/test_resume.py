"""A driver killed with SIGKILL resumes from its checkpoint and ends as an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from distgp.cli import main


def distgp_command(*args):
    return [sys.executable, "-m", "distgp", *args]


def checkpoint_step(path, key):
    try:
        with np.load(path) as content:
            if key == "evaluations":
                return len(json.loads(str(content["loop_json"]))["records"])
            return int(content[key])
    except Exception:  # not written yet, or being replaced
        return -1


def kill_after_checkpoint(args, out, key, step, timeout=120.0):
    """Start ``distgp fit`` and SIGKILL it once its checkpoint has reached ``step``."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        distgp_command(*args), env=env, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            if checkpoint_step(out / "checkpoint.npz", key) >= step:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.05)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode


@pytest.mark.parametrize(
    "extra,key,step",
    [
        (
            ["--agents", "3", "--backend", "inline", "--rounds", "14", "--components", "120"],
            "admm_round",
            3,
        ),
        (["--components", "150", "--max-iterations", "200"], "iterations", 25),
    ],
    ids=["admm", "single-agent"],
)
def test_killed_driver_resumes_to_the_same_result(data_dir, tmp_path, capsys, extra, key, step):
    common = ["fit", "--data", str(data_dir / "airfoil600.mat"), "--no-plots", "--quiet", *extra]
    killed = tmp_path / "killed"
    code = kill_after_checkpoint([*common, "--out", str(killed)], killed, key, step)
    if code == 0:
        pytest.skip("the run finished before it could be killed")
    assert code == -signal.SIGKILL
    assert (killed / "checkpoint.npz").is_file() and not (killed / "metrics.json").exists()
    assert main(["fit", "--resume", str(killed), "--quiet"]) == 0
    assert not (killed / "checkpoint.npz").exists()
    assert not list(killed.glob("*.png"))  # the interrupted run's --no-plots holds
    clean = tmp_path / "clean"
    assert main([*common, "--out", str(clean)]) == 0
    resumed = json.loads((killed / "metrics.json").read_text())
    uninterrupted = json.loads((clean / "metrics.json").read_text())
    for field in ("mse", "nlpd", "rounds", "iterations", "active_components", "objective"):
        assert resumed[field] == uninterrupted[field], field
    # the resume is recorded, and its second set-up of the agents is counted in the bits
    assert uninterrupted["events"] == [] and len(resumed["events"]) == 1
    assert resumed["events"][0].startswith("resumed from the checkpoint after ")
    assert resumed["bits_sent"] > uninterrupted["bits_sent"]
    with np.load(killed / "model.npz") as a, np.load(clean / "model.npz") as b:
        assert np.array_equal(a["weights"], b["weights"])


def test_resume_refuses_other_settings_and_missing_checkpoints(tmp_path, capsys):
    assert main(["fit", "--resume", str(tmp_path), "--quiet"]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    assert main(["fit", "--resume", str(tmp_path), "--agents", "4"]) == 2
    assert "drop --agents" in capsys.readouterr().err
    assert main(["fit", "--resume", str(tmp_path), "--no-plots"]) == 2  # kept from the run
    assert "drop --no-plots" in capsys.readouterr().err


def test_killed_optimisation_resumes_to_the_same_result(tmp_path, monkeypatch):
    monkeypatch.chdir(Path(__file__).resolve().parents[1])  # tests.helpers must be importable
    common = [
        "optimize",
        "--function",
        "tests.helpers:SlowQuadratic",
        "--budget",
        "60",
        "--quiet",
        "--no-plots",
    ]
    killed = tmp_path / "killed"
    code = kill_after_checkpoint([*common, "--out", str(killed)], killed, "evaluations", 15)
    if code == 0:
        pytest.skip("the run finished before it could be killed")
    assert code == -signal.SIGKILL and (killed / "checkpoint.npz").is_file()
    assert main(["optimize", "--resume", str(killed), "--quiet"]) == 0
    assert not (killed / "checkpoint.npz").exists() and not (killed / "regret.png").exists()
    clean = tmp_path / "clean"
    assert main([*common, "--out", str(clean)]) == 0
    resumed = json.loads((killed / "result.json").read_text())
    uninterrupted = json.loads((clean / "result.json").read_text())
    for field in ("best_x", "best_value", "simple_regret", "cumulative_regret", "evaluations"):
        assert resumed[field] == uninterrupted[field], field
    history = [line.split(",")[3:5] for line in (killed / "history.csv").read_text().splitlines()]
    assert history == [
        line.split(",")[3:5] for line in (clean / "history.csv").read_text().splitlines()
    ]


def test_an_interrupted_optimisation_over_a_space_resumes(tmp_path, monkeypatch, capsys):
    """The checkpoint's settings hold the free-form ``space`` section (it failed to load), in its
    order: sorted, the resumed space named its parameters in another order than its arms."""
    from tests import helpers

    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    monkeypatch.setattr(helpers, "interrupted_once", helpers.InterruptedOnce(at=6))
    config = tmp_path / "space.yaml"
    config.write_text(
        "function: tests.helpers:interrupted_once\nbudget: 10\nspace:\n"
        "  x: {low: -1.0, high: 1.0}\n  act: {choices: [relu, tanh]}\n"
    )
    out = tmp_path / "run"
    assert main(["optimize", "--config", str(config), "--out", str(out), "--quiet"]) == 130
    assert (out / "checkpoint.npz").is_file()
    assert main(["optimize", "--resume", str(out), "--quiet"]) == 0, capsys.readouterr().err
    result = json.loads((out / "result.json").read_text())
    assert result["evaluations"] == 10
    assert set(result["best_params"]) == {"x", "act"}


def interrupted_admm_fit(folder: Path, dims: int, components: int, at_round: int):
    """A 2-agent inline ADMM fit of seeded smooth data, checkpointed into ``folder`` and
    interrupted at round ``at_round``: ``(X, y, config, checkpoint)`` to resume it with."""
    from distgp.checkpoint import Checkpoint
    from distgp.config import FitConfig
    from distgp.driver import fit
    from tests.helpers import smooth_regression

    X, y = smooth_regression(n=80 if dims > 1 else 60, dims=dims, seed=1)
    config = FitConfig()
    config.kernel.components = components
    config.consensus.agents = 2
    config.backend.name = "inline"
    checkpoint = Checkpoint(folder)

    def interrupt(event, fields):
        if event == "round" and fields["record"].round == at_round:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(X, y, config, report=interrupt, checkpoint=checkpoint)
    return X, y, config, checkpoint


def test_resume_refuses_training_data_that_changed_since_the_checkpoint(tmp_path):
    from distgp.driver import fit
    from distgp.exceptions import ModelFileError

    X, y, config, checkpoint = interrupted_admm_fit(tmp_path, dims=2, components=30, at_round=3)
    assert checkpoint.path.is_file()
    with pytest.raises(ModelFileError, match="the training data changed since the checkpoint"):
        fit(X, 3 * y + 5, config, checkpoint=checkpoint, resume=True)
    resumed = fit(X, y, config, checkpoint=checkpoint, resume=True)
    assert resumed.rounds > 3


def test_runs_remove_only_the_files_they_wrote(tmp_path, capsys):
    """The agents' round state goes to ``OUT/agents``; a run removes its own files there, never
    a folder or file of the user's, and refuses a ``checkpoint.npz`` that is not distgp's."""
    from scipy.io import savemat

    x = np.arange(1.0, 41.0)[:, None]
    data = tmp_path / "series.mat"
    savemat(data, {"xtrain": x[:32], "ytrain": np.sin(x[:32]), "xtest": x[32:], "ytest": x[32:]})
    out = tmp_path / "run"
    users = out / "agents" / "notes.py"
    users.parent.mkdir(parents=True)
    users.write_text("keep")
    missing = ["fit", "--data", str(tmp_path / "missing.csv"), "--out", str(out), "--quiet"]
    assert main(missing) == 2
    fit = ["fit", "--data", str(data), "--agents", "2", "--backend", "inline", "--rounds", "4"]
    assert main([*fit, "--no-plots", "--quiet", "--out", str(out)]) == 0
    assert users.read_text() == "keep" and not list(users.parent.glob("agent-*"))
    capsys.readouterr()
    foreign = out / "checkpoint.npz"
    foreign.write_bytes(b"the user's own file")
    assert main([*fit, "--no-plots", "--out", str(out)]) == 2
    assert "holds a checkpoint.npz that is not a distgp fit checkpoint" in capsys.readouterr().err
    optimize = ["optimize", "--function", "branin", "--budget", "4", "--quiet", "--out"]
    assert main([*optimize, str(out)]) == 2  # a fit's folder
    assert "holds the outputs of distgp fit (model.npz)" in capsys.readouterr().err
    (out / "model.npz").unlink()
    assert main([*optimize, str(out)]) == 2
    assert "not a distgp optimize checkpoint" in capsys.readouterr().err
    assert foreign.read_bytes() == b"the user's own file" and users.read_text() == "keep"


CHANGING_MODULE = """
calls = 0

def moving(x):
    global calls
    calls += 1
    if calls == 5:
        raise KeyboardInterrupt
    return float(sum(x))

moving.bounds = {bounds}
"""


@pytest.mark.parametrize(
    ("bounds", "message"),
    [
        ("[[0.0, 2.0], [0.0, 1.0]]", "(x0 was float [0.0, 1.0], is float [0.0, 2.0] now)"),
        ("[[0.0, 1.0]] * 3", "(parameters ['x0', 'x1'] then, ['x0', 'x1', 'x2'] now)"),
    ],
)
def test_resume_refuses_a_search_space_that_changed_since_the_checkpoint(
    tmp_path, monkeypatch, capsys, bounds, message
):
    module = tmp_path / "bkb_moving_bounds.py"
    module.write_text(CHANGING_MODULE.format(bounds="[[0.0, 1.0], [0.0, 1.0]]"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "bkb_moving_bounds", raising=False)
    out = tmp_path / "run"
    argv = ["optimize", "--function", "bkb_moving_bounds:moving", "--budget", "8", "--quiet"]
    assert main([*argv, "--kernel", "rbf", "--no-plots", "--out", str(out)]) == 130
    capsys.readouterr()
    module.write_text(CHANGING_MODULE.format(bounds=bounds))
    sys.modules.pop("bkb_moving_bounds")
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert main(["optimize", "--resume", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert "start a new run without --resume" in err
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def test_an_interrupted_final_fit_keeps_its_outer_choice(data_dir, tmp_path, monkeypatch):
    """A series' default path scores its candidates, then fits the chosen one: interrupted
    there, --resume ends with the same calibrated variance, scores and records (it lost the
    choice's calibration, tune_* fields and tune.csv)."""
    from distgp import driver

    common = ["fit", "--data", str(data_dir / "passengerdata.mat"), "--no-plots", "--quiet"]
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    assert main([*common, "--out", str(clean)]) == 0
    save = driver._Saver.__call__
    calls = []

    def interrupted_once(self, state):  # at the final fit's first checkpoint (candidates have none)
        save(self, state)
        if self.checkpoint is not None and not calls:
            calls.append(1)
            raise KeyboardInterrupt

    monkeypatch.setattr(driver._Saver, "__call__", interrupted_once)
    assert main([*common, "--out", str(killed)]) == 130
    assert (killed / "checkpoint.npz").is_file() and not (killed / "metrics.json").exists()
    assert main(["fit", "--resume", str(killed), "--quiet"]) == 0
    resumed = json.loads((killed / "metrics.json").read_text())
    uninterrupted = json.loads((clean / "metrics.json").read_text())
    assert uninterrupted["variance_scale"] > 1.0 and uninterrupted["tune_evaluations"] > 1
    for field in ("mse", "nlpd", "coverage95", "variance_scale", "tune_evaluations", "trend"):
        assert resumed[field] == uninterrupted[field], field
    assert resumed["tune_chosen"] == uninterrupted["tune_chosen"]
    untimed = [pd.read_csv(d / "tune.csv").drop(columns="seconds") for d in (killed, clean)]
    pd.testing.assert_frame_equal(*untimed)


def test_checkpoints_of_the_earlier_settings_and_transform_records_still_resume():
    """Checkpoints written before bits was cleared beside delta or float64 messages recorded
    bits 8 there, and those of log or Box-Cox fits digested g(y), not g(y / c): --resume refused
    both ('other settings', 'the training data changed') though nothing had changed."""
    import json

    from distgp.agents.agent import ShardArrays
    from distgp.checkpoint import config_json
    from distgp.config import FitConfig
    from distgp.driver import _as_validated, _legacy_digest, data_digest
    from distgp.transforms import OutputTransform

    for field, value in (("quantize", False), ("delta", 0.05)):
        config = FitConfig()
        setattr(config.consensus, field, value)
        earlier = json.loads(config_json(config))  # bits 8 still recorded
        assert earlier["consensus"]["bits"] == 8
        config.validate()
        assert _as_validated(earlier) == json.loads(config_json(config))
    X = np.arange(50.0)[:, None]
    y = 100 + np.sin(X[:, 0])
    indices = [np.arange(25), np.arange(25, 50)]
    transform = OutputTransform.fitted("log", None, y)
    assert transform.scale != 1.0
    earlier = data_digest([ShardArrays(X[i], np.log(y)[i]) for i in indices])
    assert _legacy_digest(earlier, X, y, indices, transform)
    assert not _legacy_digest(earlier, X, y + 1.0, indices, transform)  # data that changed


def test_resume_refuses_shard_files_edited_since_the_checkpoint(tmp_path, monkeypatch, capsys):
    """The checkpoint of a run on shard files records the SHA-256 each agent sent of its file:
    a resume whose agents send another refuses (it mixed the saved consensus, learned from the
    old data, with the new file and exited 0; the model then recorded the new file, so
    ``distgp predict`` took it too). Restored, the file resumes to the uninterrupted result."""
    from distgp import driver
    from tests.test_shards import fit_args, write_sites

    write_sites(tmp_path)
    monkeypatch.chdir(tmp_path)  # the glob, as a user would type it
    clean, run = tmp_path / "clean", tmp_path / "run"
    assert main(fit_args(tmp_path, clean)) == 0
    save = driver._Saver.__call__
    calls = []

    def interrupted_once(self, state):  # after the second round's checkpoint
        save(self, state)
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt

    with monkeypatch.context() as patched:
        patched.setattr(driver._Saver, "__call__", interrupted_once)
        assert main(fit_args(tmp_path, run)) == 130
    saved = (run / "checkpoint.npz").read_bytes()
    capsys.readouterr()
    site = tmp_path / "site-1.csv"
    original = site.read_bytes()
    frame = pd.read_csv(site)
    frame.loc[0, "y"] = 5.0
    frame.to_csv(site, index=False)
    assert main(["fit", "--resume", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "distgp fit: error: shard file(s) changed since the checkpoint was written (their "
        f"SHA-256 differs from the one their agents sent then): {site} (agent 1); restore the "
        "file(s), or start a new run (without --resume) to learn from the new data"
    ), err
    assert (run / "checkpoint.npz").read_bytes() == saved  # nothing lost: it still resumes
    assert not (run / "metrics.json").exists() and not (run / "model.npz").exists()

    site.write_bytes(original)
    assert main(["fit", "--resume", str(run), "--quiet"]) == 0
    resumed = json.loads((run / "metrics.json").read_text())
    uninterrupted = json.loads((clean / "metrics.json").read_text())
    for field in ("mse", "nlpd", "rounds", "objective"):
        assert resumed[field] == uninterrupted[field], field

    # the resumed model records the files' digests as the fit saw them: an edit is refused
    predict = ["predict", "--model", str(run), "--data", "test.csv", "--quiet"]
    frame.to_csv(site, index=False)
    assert main([*predict, "--out", str(tmp_path / "p1")]) == 2
    assert "shard file(s) changed since the fit" in capsys.readouterr().err
    site.unlink()
    assert main([*predict, "--out", str(tmp_path / "p2")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("distgp predict: error: agent 1 on node local: cannot read shard file")
    assert err.endswith(
        "no such file; this private model's agents read the fit's shard files again to "
        "predict: restore the file at that path, or refit on the files there are"
    ), err
    site.write_bytes(original)
    assert main([*predict, "--out", str(tmp_path / "p3")]) == 0


def test_a_checkpoint_without_shard_digests_resumes_with_an_event():
    """A checkpoint of an earlier version records no digests of its shard files: the resume
    cannot check them, and says so in the run's events rather than nothing."""
    from distgp.agents.agent import ShardFile
    from distgp.driver import check_resumed_shards
    from distgp.exceptions import ModelFileError

    files = [ShardFile("a.csv"), ShardFile("b.csv")]
    note = check_resumed_shards({}, ["1", "2"], files)
    assert "records no digests of the shard files" in note
    assert check_resumed_shards({"shard_digests_json": ["1", "2"]}, ["1", "2"], files) is None
    changed = r"changed since the checkpoint .*: b\.csv \(agent 1\);"
    with pytest.raises(ModelFileError, match=changed):
        check_resumed_shards({"shard_digests_json": ["1", "2"]}, ["1", "3"], files)


def test_a_run_interrupted_in_its_tune_search_says_it_starts_again(tmp_path, monkeypatch, capsys):
    """A --tune search is checkpointed only once it has chosen: interrupted during it, the run
    said ``interrupted`` (or, over an earlier run's checkpoint, that --resume continues it:
    that resumed the earlier run), and --resume then said the run ``finished or never
    started``. Both lines now say that the search starts again."""
    from distgp import driver, tune

    t = np.arange(60.0)
    pd.DataFrame({"t": t, "y": 3 + np.sin(t / 4) + 0.02 * t}).to_csv(
        tmp_path / "s.csv", index=False
    )
    out = tmp_path / "run"
    common = ["fit", "--data", str(tmp_path / "s.csv"), "--components", "20", "--quiet"]
    common += ["--no-plots", "--backend", "inline", "--out", str(out)]
    save = driver._Saver.__call__

    def interrupted(self, state):  # an earlier plain fit, stopped after its first checkpoint
        save(self, state)
        raise KeyboardInterrupt

    monkeypatch.setattr(driver._Saver, "__call__", interrupted)
    assert main([*common, "--trend", "linear", "--agents", "2"]) == 130
    assert "--resume" in capsys.readouterr().err and (out / "checkpoint.npz").is_file()
    monkeypatch.setattr(driver._Saver, "__call__", save)
    propose = tune._proposals
    calls = []

    def interrupted_search(*args):  # the second batch: the first one is scored
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return propose(*args)

    monkeypatch.setattr(tune, "_proposals", interrupted_search)
    assert main([*common, "--tune", "8"]) == 130
    err = capsys.readouterr().err
    assert err == (
        "distgp fit: interrupted; the --tune search is not resumable (the run is checkpointed "
        "only once it has chosen): run the same command again to start it over\n"
    )
    assert main(["fit", "--resume", str(tmp_path / "never"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "there is no folder" in err
    assert "a --tune search, like the default path's held-out choice, is checkpointed only " in err
    assert err.rstrip().endswith("run its command again without --resume")


def test_predict_warns_of_an_unfinished_fit_beside_the_model(tmp_path, monkeypatch, capsys):
    """predict --model DIR used an earlier run's model.npz beside an interrupted fit's checkpoint
    (or, with metrics.json gone, a set stopped while being written) without a word: it now
    predicts as before and says so in one line, even with --quiet."""
    from distgp import driver

    fit = tmp_path / "fit"
    common = ["fit", "--data", "builtin:co2", "--components", "100", "--no-plots", "--quiet"]
    assert main([*common, "--trend", "linear", "--out", str(fit)]) == 0
    predict = ["predict", "--model", str(fit), "--ahead", "3", "--quiet"]
    assert main([*predict, "--out", str(tmp_path / "before")]) == 0
    assert capsys.readouterr().err == ""
    save = driver._Saver.__call__

    def interrupted(self, state):
        save(self, state)
        raise KeyboardInterrupt

    monkeypatch.setattr(driver._Saver, "__call__", interrupted)
    assert main([*common, "--trend", "quadratic", "--out", str(fit)]) == 130
    capsys.readouterr()
    assert main([*predict, "--out", str(tmp_path / "after")]) == 0
    assert capsys.readouterr().err.endswith(
        f"] warning: {fit} holds an unfinished fit (checkpoint.npz): the model is the earlier "
        f"finished run's; 'distgp fit --resume {fit}' finishes it\n"
    )
    earlier = (tmp_path / "before" / "predictions.csv").read_text()
    assert (tmp_path / "after" / "predictions.csv").read_text() == earlier
    (fit / "metrics.json").unlink()  # as a fit killed while moving its outputs into place
    assert (
        main([*predict[:2], str(fit / "model.npz"), *predict[3:], "--out", str(tmp_path / "x")])
        == 0
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "(no metrics.json): the model may be either run's" in err


def test_a_resumed_outer_choice_records_the_commands_settings(tmp_path, monkeypatch):
    """metrics.json's config of a default-path fit resumed in its final fit recorded the chosen
    settings (kernel.trend local, tune.horizon 53: those the checkpoint's final fit ran with),
    not the command's (auto, null) as the uninterrupted run does; a checkpoint written before
    the command's settings were saved keeps recording the final fit's."""
    import shutil

    from distgp import driver

    common = ["fit", "--data", "builtin:co2", "--components", "100", "--no-plots", "--quiet"]
    clean, killed, older = tmp_path / "clean", tmp_path / "killed", tmp_path / "older"
    assert main([*common, "--out", str(clean)]) == 0
    save = driver._Saver.__call__

    def interrupted(self, state):  # at the final fit's first checkpoint (candidates have none)
        save(self, state)
        if self.checkpoint is not None:
            raise KeyboardInterrupt

    monkeypatch.setattr(driver._Saver, "__call__", interrupted)
    assert main([*common, "--out", str(killed)]) == 130
    monkeypatch.setattr(driver._Saver, "__call__", save)
    shutil.copytree(killed, older)
    with np.load(older / "checkpoint.npz") as content:
        arrays = {k: content[k] for k in content.files if k != "command_config_json"}
    np.savez(older / "checkpoint.npz", **arrays)
    for folder in (killed, older):
        assert main(["fit", "--resume", str(folder), "--quiet"]) == 0
    configs = {
        d: json.loads((d / "metrics.json").read_text())["config"] for d in (clean, killed, older)
    }
    for config in configs.values():
        del config["out"]
    assert configs[clean]["kernel"]["trend"] == "auto" and configs[clean]["tune"]["horizon"] is None
    assert configs[killed] == configs[clean]
    assert configs[older]["kernel"]["trend"] != "auto"  # the final fit's, as before


def edited_checkpoint(path: Path, drop: str | None = None, **values) -> None:
    """Rewrite the checkpoint at ``path`` without key ``drop`` and with ``values``."""
    with np.load(path) as content:
        arrays = {k: content[k] for k in content.files if k != drop}
    np.savez(path, **{**arrays, **{k: np.asarray(v) for k, v in values.items()}})


def test_a_checkpoint_lacking_a_key_or_with_a_wrong_value_is_refused_in_one_line(tmp_path):
    """A checkpoint with the format marker but without a key (another version's, or edited)
    was a KeyError traceback."""
    from distgp.driver import fit
    from distgp.exceptions import ModelFileError

    X, y, config, checkpoint = interrupted_admm_fit(tmp_path, dims=1, components=20, at_round=2)
    saved = checkpoint.path.read_bytes()
    remedy = f"to start a new run, remove it (and {tmp_path / 'agents'}/) or choose another --out"
    edited_checkpoint(checkpoint.path, drop="history_json")
    with pytest.raises(ModelFileError) as lacking:
        fit(X, y, config, checkpoint=checkpoint, resume=True)
    assert str(lacking.value) == (
        f"checkpoint {checkpoint.path} lacks 'history_json' (another distgp version's, or "
        f"edited); {remedy}"
    )
    checkpoint.path.write_bytes(saved)
    edited_checkpoint(checkpoint.path, history_json="5")
    with pytest.raises(ModelFileError, match="holds a state this distgp cannot take up") as wrong:
        fit(X, y, config, checkpoint=checkpoint, resume=True)
    assert str(wrong.value).endswith(remedy)


def test_resume_of_a_checkpoint_without_its_settings_is_one_line(tmp_path, capsys, monkeypatch):
    from scipy.io import savemat

    import distgp.cli.fit as fit_command

    x = np.arange(1.0, 41.0)[:, None]
    data = tmp_path / "series.mat"
    savemat(data, {"xtrain": x[:32], "ytrain": np.sin(x[:32]), "xtest": x[32:], "ytest": x[32:]})

    def interrupted(dataset, config, progress, checkpoint, *rest):
        checkpoint.save(config, {"iterations": 3})
        raise KeyboardInterrupt

    monkeypatch.setattr(fit_command, "_learn", interrupted)
    out = tmp_path / "run"
    assert main(["fit", "--data", str(data), "--out", str(out), "--quiet"]) == 130
    edited_checkpoint(out / "checkpoint.npz", drop="config_json")
    capsys.readouterr()
    assert main(["fit", "--resume", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"distgp fit: error: checkpoint {out / 'checkpoint.npz'} lacks 'config_json' (another "
        f"distgp version's, or edited); to start a new run, remove it (and {out / 'agents'}/) or "
        "choose another --out\n"
    )


def test_agents_get_an_absolute_state_folder(tmp_path, monkeypatch):
    """A relative --out named a folder in each node's working directory (its raylet's)."""
    from distgp.checkpoint import Checkpoint

    monkeypatch.chdir(tmp_path)
    assert Checkpoint("runs/fit").agent_state_dir == str(tmp_path / "runs" / "fit" / "agents")


def state_run(tmp_path, monkeypatch=None):
    """A finished 2-agent inline fit with a checkpoint in ``tmp_path``; with ``monkeypatch``,
    the agents keep their state files. Returns the backend (its agents kept)."""
    from distgp.agents.agent import Agent
    from distgp.agents.backends import InlineBackend
    from distgp.checkpoint import Checkpoint
    from distgp.config import FitConfig
    from distgp.driver import fit
    from tests.helpers import smooth_regression

    if monkeypatch is not None:
        monkeypatch.setattr(Agent, "forget", lambda self: False)
    X, y = smooth_regression(n=60, dims=1, seed=1)
    config = FitConfig()
    config.kernel.components = 12
    config.consensus.agents, config.consensus.max_rounds = 2, 4
    config.backend.name = "inline"
    backend = InlineBackend()
    fit(X, y, config, backend=backend, checkpoint=Checkpoint(tmp_path))
    return backend


def test_agents_delete_their_round_state_when_the_run_ends(tmp_path):
    """Only the driver's own folder was cleaned: on a cluster the nodes kept agent-J.npz."""
    state_run(tmp_path)
    assert not list(tmp_path.glob("agents/*"))
    assert (tmp_path / "checkpoint.npz").is_file()  # the driver's, removed once outputs are written


def test_an_agent_takes_up_only_its_own_runs_state(tmp_path, monkeypatch):
    """Two runs over one state folder (the same --out on a node): a restore checks the run id."""
    import dataclasses

    backend = state_run(tmp_path, monkeypatch)
    agent = backend.agent(0)
    with np.load(tmp_path / "checkpoint.npz") as saved:
        run_id = str(saved["run_id"])
    last = agent._last_round
    assert (tmp_path / "agents" / "agent-0.npz").is_file() and agent._settings.run == run_id
    assert agent.restore(last)
    agent._settings = dataclasses.replace(agent._settings, run="another-run")
    assert not agent.restore(last)
