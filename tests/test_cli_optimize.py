"""``distgp optimize``: outputs, configs, failed evaluations, bad input, GSMP and Ray agents."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from distgp.cli import main

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "configs").glob("optimize-*.yaml"))


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    try:
        code = main(["optimize", *args])
    except SystemExit as exc:  # argparse errors
        code = exc.code
    return code, capsys.readouterr().err


def read_history(out: Path) -> list[dict]:
    with open(out / "history.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_branin_writes_result_history_and_plot(tmp_path, capsys):
    out = tmp_path / "run"
    code, err = run_cli(["--function", "branin", "--budget", "40", "--out", str(out)], capsys)
    assert code == 0
    result = json.loads((out / "result.json").read_text())
    for key in (
        "best_x",
        "best_value",
        "simple_regret",
        "cumulative_regret",
        "evaluations",
        "seconds",
        "dictionary_size_max",
        "batches",
    ):
        assert key in result
    assert result["evaluations"] == 40 and len(result["best_x"]) == 2
    assert result["simple_regret"] == pytest.approx(result["best_value"] - 0.397887357729738)
    assert 0 < result["dictionary_size_max"] <= 40 and result["batches"] == 40
    rows = read_history(out)
    assert len(rows) == 40 and {"x0", "x1", "value", "regret", "failed"} <= set(rows[0])
    cumulative = sum(float(r["regret"]) for r in rows)
    assert result["cumulative_regret"] == pytest.approx(cumulative, rel=1e-12)
    assert min(float(r["value"]) for r in rows) == result["best_value"]  # every digit
    assert (out / "regret.png").stat().st_size > 1000
    assert "evaluation    40/40" in err and "wrote" in err


def test_same_seed_same_history(tmp_path, capsys):
    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        run_cli(
            [
                "--function",
                "levy",
                "--budget",
                "15",
                "--seed",
                "3",
                "--quiet",
                "--no-plots",
                "--out",
                str(out),
            ],
            capsys,
        )
        runs.append([(r["x0"], r["x1"]) for r in read_history(out)])
    assert runs[0] == runs[1]


def test_batch_mode_with_two_inline_agents(tmp_path, capsys):
    out = tmp_path / "run"
    code, _ = run_cli(
        [
            "--function",
            "hartmann6",
            "--budget",
            "120",
            "--batch",
            "--agents",
            "2",
            "--backend",
            "inline",
            "--beta",
            "3",
            "--quiet",
            "--no-plots",
            "--out",
            str(out),
        ],
        capsys,
    )
    assert code == 0
    result = json.loads((out / "result.json").read_text())
    assert result["evaluations"] == 120 and result["batch_size_max"] > 1
    assert result["batches"] < 120 and result["algorithm"] == "batch-bkb"
    assert {r["agent"] for r in read_history(out)} == {"0", "1"}


FLAKY_MODULE = """
import math
import numpy as np

bounds = [[0.0, 1.0], [0.0, 1.0]]

def flaky(x):
    if x[0] > 0.8:
        raise RuntimeError("simulator crashed")
    if x[1] > 0.9:
        return float("nan")
    return float((x[0] - 0.3) ** 2 + (x[1] - 0.6) ** 2)

flaky.bounds = bounds
flaky.optimal_value = 0.0

def broken(x):
    raise RuntimeError("licence server down")

broken.bounds = bounds

def too_big(x):
    return 10**400 if x[0] > 0.5 else float(x[0])

too_big.bounds = bounds

def quits(x):
    if x[0] > 0.5:
        raise SystemExit(3)
    return float(x[0])

quits.bounds = bounds

def flat(x):
    return float(x[0])

flat.bounds = [0.0, 1.0, 2.0, 3.0]  # two parameters, or four? ambiguous

def huge(x):
    return float(x[0])

huge.bounds = [[-1e308, 1e308]]

def unknown_optimum(x):
    return float(x[0])

unknown_optimum.bounds = bounds
unknown_optimum.optimal_value = float("nan")

def numpy_optimum(x):
    return float(x[0])

numpy_optimum.bounds = bounds
numpy_optimum.optimal_value = np.float32(0.0)

calls = 0
stop_at = 1

def stops(x):  # Ctrl-C at the stop_at-th evaluation
    global calls
    calls += 1
    if calls == stop_at:
        raise KeyboardInterrupt
    return float(x[0])

stops.bounds = bounds

def text(x):
    return "1.5"

text.bounds = bounds

def late_none(x):  # None from the third evaluation on
    global calls
    calls += 1
    return None if calls >= 3 else float(x[0])

late_none.bounds = bounds

def as_dict(x):  # reads its array as a dict: an error in its code, at every point
    return float(x["x0"])

as_dict.bounds = bounds

failing = 4


def late_start(x):  # the same code error in its first `failing` evaluations only
    global calls
    calls += 1
    if calls <= failing:
        raise IndexError("index 2 is out of bounds")
    return float(x[0])

late_start.bounds = bounds

def tuned(params):
    lr, layers, act = params["lr"], params["layers"], params["act"]
    return (math.log10(lr) + 2) ** 2 + (layers - 2) ** 2 + (act == "tanh")
"""


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "bkb_user_objectives.py").write_text(FLAKY_MODULE)
    monkeypatch.chdir(tmp_path)
    return "bkb_user_objectives"


def run_objective(user_module: str, name: str, budget: int, out: Path, capsys, *flags: str):
    """``distgp optimize`` of the user module's ``name`` with the RBF kernel into ``out``; exit
    code and stderr."""
    argv = ["--function", f"{user_module}:{name}", "--budget", str(budget), "--kernel", "rbf"]
    return run_cli([*argv, *flags, "--out", str(out)], capsys)


def imported(user_module: str, monkeypatch, **values):
    """The user module, imported from the working directory, its ``calls`` counter at 0 and
    the module-level ``values`` set for this test."""
    import importlib

    monkeypatch.syspath_prepend(".")
    module = importlib.import_module(user_module)
    for name, value in {"calls": 0, **values}.items():
        monkeypatch.setattr(module, name, value)
    return module


def test_failed_evaluations_are_recorded_and_the_run_goes_on(tmp_path, capsys, user_module):
    out = tmp_path / "run"
    code, _ = run_cli(
        [
            "--function",
            f"{user_module}:flaky",
            "--budget",
            "50",
            "--arms",
            "400",
            "--quiet",
            "--out",
            str(out),
        ],
        capsys,
    )
    assert code == 0
    result = json.loads((out / "result.json").read_text())
    rows = read_history(out)
    failed = [r for r in rows if r["failed"] == "1"]
    assert result["evaluations"] == 50 and result["failures"] == len(failed) > 0
    assert any("RuntimeError: simulator crashed" in r["error"] for r in failed)
    assert all(r["value"] == "nan" for r in failed)
    assert math.isfinite(result["best_value"]) and result["best_x"][0] <= 0.8


def test_a_run_where_every_evaluation_fails_writes_results_and_exits_1(
    tmp_path, capsys, user_module
):
    out = tmp_path / "run"
    argv = ["--function", f"{user_module}:broken", "--budget", "3", "--quiet", "--out", str(out)]
    code = main(["optimize", *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and "all 3 evaluations failed" in err[0]
    assert "RuntimeError: licence server down" in err[0]
    assert json.loads((out / "result.json").read_text())["failures"] == 3


def test_a_code_error_in_the_first_evaluations_stops_the_run_early(tmp_path, capsys, user_module):
    """A callable with bounds that reads its array as a dict spent the whole budget on errors."""
    out = tmp_path / "run"
    argv = ["--function", f"{user_module}:as_dict", "--budget", "40", "--quiet", "--out", str(out)]
    code, err = run_cli(argv, capsys)
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1, err
    assert (
        "stopped after 5 of 40 evaluations, none worked and the first 5 failed with IndexError"
        in lines[0]
    )
    assert "called with a 1-D numpy array x" in lines[0]
    result = json.loads((out / "result.json").read_text())
    assert result["evaluations"] == result["failures"] == 5
    assert any("the first 5 all raised IndexError" in e for e in result["events"])
    assert not (out / "checkpoint.npz").exists()


def test_code_errors_in_fewer_than_the_first_five_evaluations_do_not_stop_the_run(
    tmp_path, capsys, monkeypatch, user_module
):
    imported(user_module, monkeypatch)
    out = tmp_path / "run"
    code, err = run_objective(user_module, "late_start", 8, out, capsys, "--quiet")
    assert code == 0, err
    result = json.loads((out / "result.json").read_text())
    assert result["evaluations"] == 8 and result["failures"] == 4


def test_code_errors_in_the_first_five_of_a_batch_with_successes_do_not_stop_the_run(
    tmp_path, capsys, monkeypatch, user_module
):
    """A first batch of 8 whose first 5 evaluations raised one code error and whose other 3
    worked stopped the run there (exit 0, no line): the stop is for objectives that never work."""
    imported(user_module, monkeypatch, failing=5)
    code, err, out = run_config(
        tmp_path,
        capsys,
        f"function: {user_module}:late_start\nbudget: 16\nagents: {{backend: inline}}\n"
        "kernel: {name: rbf}\nbandit: {batch: true, noise_variance: 100.0, "
        "ratio_threshold: 50.0, max_batch: 8}\n",
    )
    assert code == 0, err
    result = json.loads((out / "result.json").read_text())
    assert result["batch_size_max"] > 5  # the fifth evaluation and a success in one batch
    assert result["evaluations"] == 16 and result["failures"] == 5
    assert not any("stopped after" in e for e in result["events"])


def test_an_int_too_large_for_a_float_fails_that_evaluation(tmp_path, capsys, user_module):
    """10**400 gave a traceback (OverflowError in float())."""
    out = tmp_path / "run"
    code, err = run_objective(user_module, "too_big", 6, out, capsys, "--quiet")
    assert code == 0, err
    failed = [r for r in read_history(out) if r["failed"] == "1"]
    assert failed and all(
        r["error"] == "the objective returned an int too large for a float" for r in failed
    )


def run_config(tmp_path: Path, capsys, text: str) -> tuple[int, str, Path]:
    """``distgp optimize --config`` with ``text`` as the config; exit code, stderr, --out."""
    config = tmp_path / "optimize.yaml"
    config.write_text(text)
    out = tmp_path / "run"
    code, err = run_cli(["--config", str(config), "--no-plots", "--out", str(out)], capsys)
    return code, err, out


def test_callable_with_a_space_section(tmp_path, capsys, user_module):
    code, err, out = run_config(
        tmp_path,
        capsys,
        f"function: {user_module}:tuned\nbudget: 25\narms: {{count: 300}}\n"
        "space:\n  lr: {type: float, low: 1.0e-4, high: 1.0, log: true}\n"
        "  layers: {type: int, low: 1, high: 4}\n  act: {choices: [relu, tanh]}\n",
    )
    assert code == 0, err
    result = json.loads((out / "result.json").read_text())
    assert set(result["best_params"]) == {"lr", "layers", "act"}
    assert result["simple_regret"] is None and result["cumulative_regret"] is None
    assert result["best_value"] < 1.0


def test_a_space_smaller_than_the_budget_stops_when_every_point_is_evaluated(
    tmp_path, capsys, user_module
):
    code, err, out = run_config(
        tmp_path,
        capsys,
        f"function: {user_module}:tuned\nbudget: 20\nspace:\n"
        "  lr: {choices: [0.01, 0.1]}\n  layers: {type: int, low: 1, high: 3}\n"
        "  act: {choices: [relu]}\n",
    )
    assert code == 0, err
    assert "stopped after 6 of 20 evaluations: every point of the search space" in err
    result = json.loads((out / "result.json").read_text())
    assert result["evaluations"] == 6 and result["best_params"]["layers"] == 2


def test_a_value_beyond_the_stated_optimum_is_flagged(tmp_path, capsys, user_module):
    out = tmp_path / "run"
    argv = ["--function", f"{user_module}:flaky", "--maximize", "--budget", "3"]
    code, err = run_cli([*argv, "--no-plots", "--out", str(out)], capsys)
    assert code == 0 and "better than the stated optimal_value 0" in err


def test_an_optimum_given_as_a_numpy_number_gives_regrets(tmp_path, capsys, user_module):
    out = tmp_path / "run"
    argv = ["--function", f"{user_module}:numpy_optimum", "--budget", "3", "--no-plots"]
    code, err = run_cli([*argv, "--out", str(out)], capsys)
    assert code == 0, err
    result = json.loads((out / "result.json").read_text())
    assert result["optimal_value"] == 0.0 and result["simple_regret"] is not None


def test_a_non_finite_optimum_is_refused(tmp_path, capsys, user_module):
    out = tmp_path / "run"
    code, err = run_cli(["--function", f"{user_module}:unknown_optimum", "--out", str(out)], capsys)
    assert code == 2 and err.count("\n") == 1 and "optimal_value must be finite" in err
    assert not out.exists()


BAD_INPUTS = [
    (["--budget", "0"], "budget must be at least 1"),
    (["--arms", "1"], "arms.count must be at least 2"),
    (["--function", "rosenbrock"], "unknown function 'rosenbrock'"),
    (["--function", "no_such_module_xyz:f"], "cannot import module 'no_such_module_xyz'"),
    (["--function", "math:no_such_function"], "has no attribute"),
    (["--function", "math:sqrt"], "called with a 1-D array x; a module-level bounds is not"),
    (["--function", "math:sqrt"], "space: section (it is then called with a dict"),
    (["--beta", "loose"], "bandit.beta must be practical, theory or a positive, finite number"),
    (["--budget", "ten"], "expected an integer"),
    (["--function", "math:sqrt", "--noise", "1"], "noise_std adds noise to the built-in"),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUTS)
def test_bad_input_is_one_line_exit_2_and_no_output(tmp_path, capsys, args, message):
    out = tmp_path / "run"
    code, err = run_cli([*args, "--out", str(out)], capsys)
    assert code == 2
    assert err.count("\n") == 1 and message in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ("x: {low: 1.0, high: 1.0}", "has zero width (low = high = 1.0)"),
        ("x: {low: 0.0, high: 1.0, log: true}", "log scale needs low > 0"),
        ("x: {choices: [only]}", "at least 2 arms"),
        ("k: {type: int, low: 0.5, high: 3.5}", "integer parameter k needs integer bounds"),
        ("x: {low: true, high: 3}", "space.x.low=True is not a number"),
    ],
)
def test_bad_space_is_one_line_exit_2(tmp_path, capsys, user_module, space, message):
    config = tmp_path / "bad.yaml"
    config.write_text(f"function: {user_module}:tuned\nspace:\n  {space}\n")
    out = tmp_path / "run"
    code, err = run_cli(["--config", str(config), "--out", str(out)], capsys)
    assert code == 2 and err.count("\n") == 1 and message in err
    assert not out.exists()


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_ready_configs_run(config, tmp_path, capsys):
    out = tmp_path / "run"
    code, _ = run_cli(["--config", str(config), "--quiet", "--no-plots", "--out", str(out)], capsys)
    assert code == 0
    result = json.loads((out / "result.json").read_text())
    assert result["evaluations"] >= 1 and result["simple_regret"] is not None


def test_gsmp_kernel_is_relearned_by_the_agents(tmp_path, capsys):
    out = tmp_path / "run"
    code, _ = run_cli(
        [
            "--function",
            "branin",
            "--budget",
            "30",
            "--kernel",
            "gsmp",
            "--agents",
            "2",
            "--backend",
            "inline",
            "--batch",
            "--quiet",
            "--no-plots",
            "--out",
            str(out),
        ],
        capsys,
    )
    assert code == 0
    result = json.loads((out / "result.json").read_text())
    assert result["kernel"] == "gsmp" and result["kernel_refits"] >= 1
    assert result["evaluations"] == 30


def test_ray_agents_evaluate_batches(tmp_path, capsys, ray_local):
    out = tmp_path / "run"
    code, _ = run_cli(
        [
            "--function",
            "branin",
            "--budget",
            "20",
            "--batch",
            "--agents",
            "2",
            "--backend",
            "ray",
            "--beta",
            "3",
            "--quiet",
            "--no-plots",
            "--out",
            str(out),
        ],
        capsys,
    )
    assert code == 0
    result = json.loads((out / "result.json").read_text())
    assert result["backend"] == "ray" and result["evaluations"] == 20
    assert {r["agent"] for r in read_history(out)} == {"0", "1"}
    # the learning agents fit beside the evaluating ones: the GSMP re-fit ran, nothing skipped
    assert result["kernel"] == "gsmp" and result["kernel_refits"] == 1
    assert result["events"] == []


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("flat", "flat.bounds must be a d x 2 array of (low, high) rows"),
        ("huge", "spans more than float64 holds"),
    ],
)
def test_bounds_that_are_ambiguous_or_too_wide_are_refused(name, message, capsys, user_module):
    code, err = run_cli(["--function", f"{user_module}:{name}", "--budget", "3"], capsys)
    assert code == 2 and err.count("\n") == 1 and message in err, err


def test_an_objective_that_calls_sys_exit_fails_that_evaluation(tmp_path, capsys, user_module):
    out = tmp_path / "run"
    argv = ["--function", f"{user_module}:quits", "--budget", "12", "--quiet", "--out", str(out)]
    code, _ = run_cli(argv, capsys)
    assert code == 0
    failed = [r for r in read_history(out) if r["failed"] == "1"]
    assert failed and all(r["error"] == "SystemExit: 3" for r in failed)


def run_exits_process(tmp_path, capsys, monkeypatch, once: bool) -> tuple[int, str, Path]:
    """A 6-evaluation Ray run whose objective ends its actor's process at the 4th evaluation
    (and, unless ``once``, at every later one)."""
    from tests import helpers

    monkeypatch.chdir(REPO)
    monkeypatch.setattr(helpers, "exits_process", helpers.ExitsProcess(tmp_path, 4, once))
    out = tmp_path / "run"
    argv = ["--function", "tests.helpers:exits_process", "--budget", "6", "--backend", "ray"]
    code, err = run_cli(
        [*argv, "--kernel", "rbf", "--quiet", "--no-plots", "--out", str(out)], capsys
    )
    return code, err, out


def run_raises_at(tmp_path, capsys, monkeypatch, at: int, error) -> tuple[int, str, Path]:
    """A 6-evaluation Ray run (2 agents) whose objective raises ``error`` from evaluation
    ``at`` on."""
    from tests import helpers

    monkeypatch.chdir(REPO)
    monkeypatch.setattr(helpers, "raises_at", helpers.RaisesAt(tmp_path, at, error))
    out = tmp_path / "run"
    argv = ["--function", "tests.helpers:raises_at", "--budget", "6", "--backend", "ray"]
    argv += ["--agents", "2", "--kernel", "rbf", "--quiet", "--no-plots", "--out", str(out)]
    code, err = run_cli(argv, capsys)
    return code, err, out


def test_a_keyboard_interrupt_in_a_ray_agent_interrupts_the_run_as_inline(
    tmp_path, capsys, monkeypatch, ray_local
):
    """Ray took it for a cancelled task: every evaluation failed, with a colour-coded ray::
    line as the error."""
    code, err, out = run_raises_at(tmp_path, capsys, monkeypatch, 4, KeyboardInterrupt)
    assert code == 130 and "interrupted" in err, err
    assert (out / "checkpoint.npz").is_file() and not (out / "history.csv").exists()


def test_a_ray_agents_failure_names_the_exception_without_colour_codes(
    tmp_path, capsys, monkeypatch, ray_local
):
    from tests.helpers import Halt

    code, err, out = run_raises_at(tmp_path, capsys, monkeypatch, 1, Halt)
    assert code == 1 and "\x1b" not in err and "ray::" not in err, err
    errors = {r["error"] for r in read_history(out)}
    assert errors <= {"agent 0 failed: Halt: stop", "agent 1 failed: Halt: stop"}, errors


def test_a_ray_agent_that_dies_is_restarted_and_no_evaluation_fails(
    tmp_path, capsys, monkeypatch, ray_local
):
    code, err, out = run_exits_process(tmp_path, capsys, monkeypatch, once=True)
    assert code == 0, err
    assert (tmp_path / "died").is_file()
    rows = read_history(out)
    assert len(rows) == 6 and all(r["failed"] == "0" for r in rows)
    line = "agent 0 died running evaluation(s) 3; restarted, and they run again"
    assert json.loads((out / "result.json").read_text())["events"] == [line]  # it was []


def test_a_ray_agent_that_dies_again_stops_the_run_and_keeps_its_checkpoint(
    tmp_path, capsys, monkeypatch, ray_local
):
    code, err, out = run_exits_process(tmp_path, capsys, monkeypatch, once=False)
    assert code == 2 and err.count("\n") == 1, err
    assert "agent 0 died twice running evaluation 3" in err
    assert f"'distgp optimize --resume {out}' continues the run" in err
    assert (out / "checkpoint.npz").is_file() and not (out / "result.json").exists()


def run_stops(user_module, monkeypatch, capsys, out: Path, stop_at: int, *flags: str):
    """``stops`` with a Ctrl-C at evaluation ``stop_at`` (0: never); exit code and stderr."""
    imported(user_module, monkeypatch, stop_at=stop_at)
    return run_objective(user_module, "stops", 4, out, capsys, *flags)


def test_resuming_a_checkpoint_without_a_recorded_space_in_another_order_is_refused(
    tmp_path, capsys, monkeypatch, user_module
):
    """Checkpoints older than the recorded space kept the config's space with sorted keys: the
    resumed run decoded the saved arms in the wrong column order, silently."""
    import importlib

    import numpy as np

    monkeypatch.syspath_prepend(".")
    module = importlib.import_module(user_module)
    calls, tuned = [], module.tuned

    def tuned_stops(params):
        calls.append(params)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return tuned(params)

    monkeypatch.setattr(module, "tuned", tuned_stops)
    code, err, out = run_config(
        tmp_path,
        capsys,
        f"function: {user_module}:tuned\nbudget: 6\nkernel: {{name: rbf}}\n"
        "space:\n  lr: {type: float, low: 1.0e-4, high: 1.0, log: true}\n"
        "  act: {choices: [relu, tanh]}\n",
    )
    assert code == 130, err
    with np.load(out / "checkpoint.npz") as saved:  # as the older code wrote it
        arrays = dict(saved)
    loop = json.loads(str(arrays["loop_json"]))
    del loop["space"]
    arrays["loop_json"] = np.array(json.dumps(loop))
    arrays["config_json"] = np.array(
        json.dumps(json.loads(str(arrays["config_json"])), sort_keys=True)
    )
    np.savez(out / "checkpoint.npz", **arrays)
    code, err = run_cli(["--resume", str(out)], capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert "predates recorded search spaces" in err and "['lr', 'act'] then" in err
    assert "start a new run without --resume" in err
    assert {p.name for p in out.iterdir()} == {"checkpoint.npz"}


def test_a_run_interrupted_at_its_first_evaluation_leaves_no_folder(
    tmp_path, capsys, monkeypatch, user_module
):
    out = tmp_path / "new" / "run"
    code, err = run_stops(user_module, monkeypatch, capsys, out, 1, "--quiet")
    assert code == 130 and "interrupted" in err and "--resume" not in err
    assert not (tmp_path / "new").exists()


def test_a_new_run_replaces_an_earlier_runs_outputs_and_says_so(
    tmp_path, capsys, monkeypatch, user_module
):
    out = tmp_path / "run"
    assert run_stops(user_module, monkeypatch, capsys, out, 0)[0] == 0
    (out / "notes.txt").write_text("the user's own file")
    assert {p.name for p in out.iterdir()} == {
        "result.json",
        "history.csv",
        "regret.png",
        "notes.txt",
    }
    earlier = (out / "result.json").read_text()
    code, err = run_stops(user_module, monkeypatch, capsys, out, 1, "--no-plots", "--quiet")
    assert code == 130 and "replacing" not in err  # nothing written: the earlier run is kept
    assert (out / "result.json").read_text() == earlier and (out / "regret.png").is_file()
    code, err = run_stops(user_module, monkeypatch, capsys, out, 3, "--no-plots", "--quiet")
    assert code == 130 and f"replacing the results of an earlier run in {out}" in err  # --quiet
    assert {p.name for p in out.iterdir()} == {"notes.txt", "checkpoint.npz"}  # not mixed


def test_a_new_run_refuses_a_result_json_that_distgp_did_not_write(
    tmp_path, capsys, monkeypatch, user_module
):
    """Any result.json was taken as an earlier run's and deleted with history.csv."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "result.json").write_text('{"my": "important"}')
    (out / "history.csv").write_text("a,b\n")
    code, err = run_stops(user_module, monkeypatch, capsys, out, 0, "--quiet")
    assert code == 2 and err.count("\n") == 1, err
    assert "holds a result.json that distgp optimize did not write" in err
    assert (out / "result.json").read_text() == '{"my": "important"}'
    assert (out / "history.csv").read_text() == "a,b\n"


def test_a_new_run_over_an_interrupted_one_says_so_and_names_resume(
    tmp_path, capsys, monkeypatch, user_module
):
    out = tmp_path / "run"
    assert run_stops(user_module, monkeypatch, capsys, out, 3)[0] == 130
    assert (out / "checkpoint.npz").is_file()
    code, err = run_stops(user_module, monkeypatch, capsys, out, 0, "--no-plots")
    assert code == 0
    assert f"replacing an interrupted run's checkpoint in {out} (--resume {out} would" in err
    assert {p.name for p in out.iterdir()} == {"result.json", "history.csv"}


def test_a_run_interrupted_before_its_first_checkpoint_offers_no_resume_of_an_older_one(
    tmp_path, capsys, monkeypatch, user_module
):
    """An earlier run's checkpoint.npz in the folder was offered: --resume finished that run."""
    out = tmp_path / "run"
    assert run_stops(user_module, monkeypatch, capsys, out, 3, "--quiet")[0] == 130
    earlier = (out / "checkpoint.npz").read_bytes()
    code, err = run_stops(user_module, monkeypatch, capsys, out, 1, "--quiet")
    assert code == 130 and "--resume" not in err.splitlines()[-1], err
    assert "run the same command again to start it over" in err
    assert f"({out / 'checkpoint.npz'} is an earlier run's, which the new run replaces" in err
    assert (out / "checkpoint.npz").read_bytes() == earlier


@pytest.mark.parametrize(
    ("returned", "message"),
    [("'1.5'", "returned str '1.5', not a real number"), ("True", "returned bool True, not a")],
)
def test_an_objective_that_returns_no_number_stops_the_run_at_once(
    tmp_path, capsys, returned, message
):
    (tmp_path / "bkb_returns.py").write_text(
        f"def wrong(x):\n    return {returned}\n\nwrong.bounds = [[0.0, 1.0]]\n"
    )
    out = tmp_path / "run"
    argv = ["--function", "bkb_returns:wrong", "--budget", "3", "--out", str(out)]
    import sys

    sys.modules.pop("bkb_returns", None)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)
        code, err = run_cli([*argv, "--quiet"], capsys)
    sys.modules.pop("bkb_returns", None)
    assert code == 2 and err.count("\n") == 1, err
    assert f"error: evaluation 0: the objective {message}" in err and "return a float" in err
    assert not out.exists()
    out.mkdir()
    (out / "result.json").write_text('{"function": "f", "evaluations": 3, "version": "1"}')
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)
        code, err = run_cli([*argv, "--quiet"], capsys)
    sys.modules.pop("bkb_returns", None)
    assert code == 2 and (out / "result.json").is_file()  # the earlier results are kept


def test_an_objective_that_returns_none_later_stops_and_keeps_the_checkpoint(
    tmp_path, capsys, monkeypatch, user_module
):
    imported(user_module, monkeypatch)
    out = tmp_path / "run"
    code, err = run_objective(user_module, "late_none", 5, out, capsys, "--quiet")
    assert code == 2 and err.count("\n") == 1, err
    assert "evaluation 2: the objective returned NoneType None, not a real number" in err
    assert f"'distgp optimize --resume {out}' continues the run" in err
    assert {p.name for p in out.iterdir()} == {"checkpoint.npz"}


def test_the_default_warmup_grows_with_the_agents_and_six_agents_run(tmp_path, capsys):
    """``kernel.warmup`` has no flag and must be at least 2 per agent: its default of 10 refused
    ``--agents 6`` (``kernel.warmup must be at least 2 per agent (12), got 10``), a setting the
    user never set. Left unset it is 10, or 2 per agent with more agents; one set is kept."""
    from distgp.bandit.config import OptimizeConfig

    config = OptimizeConfig()
    assert config.kernel.warmup is None and config.warmup == 10
    config.agents.count = 6
    assert config.validate().warmup == 12
    config.kernel.warmup = 20
    assert config.validate().warmup == 20
    out = tmp_path / "run"
    argv = ["--budget", "14", "--agents", "6", "--backend", "inline", "--quiet", "--no-plots"]
    code, err = run_cli([*argv, "--out", str(out)], capsys)
    assert code == 0, err
    assert json.loads((out / "result.json").read_text())["evaluations"] == 14
