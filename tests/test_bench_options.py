"""``distgp bench``: options refused up front, recorded command lines, --config and --out."""

from __future__ import annotations

import contextlib
import io

import pytest

from distgp.bench.report import update_results
from distgp.cli import main
from distgp.exceptions import ConfigError


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """Run the CLI in-process; return (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse usage errors
            code = int(exc.code)
    return code, out.getvalue(), err.getvalue()


def refused(argv: list[str], needle: str) -> None:
    """The command exits 2 with one line on stderr containing ``needle``."""
    code, _, err = run_cli(argv)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and needle in lines[0], err


def test_faults_rounds_of_one_refused_by_the_parser(tmp_path):
    refused(
        ["bench", "faults", "--rounds", "1", "--data-dir", str(tmp_path)],
        "argument --rounds: expected an integer of at least 2, got 1",
    )


def test_admm_repeated_agent_count_refused(data_dir):
    refused(
        ["bench", "admm", "--quick", "--agents", "2,2", "--data-dir", str(data_dir)],
        "--agents names 2 twice; give each agent count once",
    )


def test_kernel_timeout_below_a_second_is_named_as_given(data_dir):
    from distgp.bench.kernel import Task, run_isolated

    path = str(data_dir / "cccp9500.mat")  # a one-agent fit of 9500 points: minutes
    task = Task("cccp9500", "gsmp-data", "gsmp", path, {"overrides": {}})
    [result] = run_isolated([task], 1, 0.5, lambda _: None)
    assert result["error"] == "killed after the 0.5 s limit (--timeout)"


def test_kernel_failed_fit_is_not_the_slowest():
    from distgp.bench.kernel import summary_lines

    def row(name: str, gsmp: dict) -> dict:
        return {
            "dataset": name,
            "n": 80,
            "series": False,
            "paper_mse": None,
            "models": {"gsmp-data": gsmp},
            "trivial": {"mean": {"mse": 1.0}},
            "skipped": {},
        }

    rows = [row("a", {"mse": 0.5, "seconds": 3.0}), row("b", {"error": "killed"})]
    lines = "\n".join(summary_lines(rows))
    assert "learns in < 60 s on 1 of 2 datasets with n <= 1000 (slowest: a, 3.0 s)" in lines
    assert "slowest" not in "\n".join(summary_lines(rows[1:]))


def test_results_file_not_utf8_refused_before_the_run(tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_bytes(b"# R\n\xe9t\xe9\n")
    json_path = tmp_path / "out.json"
    argv = ["bench", "tune", "--from-jsonl", str(tmp_path / "none.jsonl")]
    refused(
        [*argv, "--results", str(results), "--json", str(json_path)],
        f"results file {results} is not UTF-8 text (byte 4); save it as UTF-8",
    )
    assert not json_path.exists()


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (
            "# R\n\n<!-- kernel:start -->\nold\n\n<!-- admm:start -->\nA\n<!-- admm:end -->\n",
            "has `<!-- kernel:start -->` without its end before `<!-- admm:start -->`; fix the "
            "file: add `<!-- kernel:end -->` or remove the start",
        ),
        ("# R\n<!-- admm:start -->\nA\n", "`<!-- admm:start -->` without its end; fix the file"),
        ("# R\nA\n<!-- admm:end -->\n", "`<!-- admm:end -->` without its start; fix the file"),
        (
            "<!-- admm:start -->\nA\n<!-- admm:end -->\n<!-- admm:start -->\nB\n<!-- admm:end -->",
            "`<!-- admm:start -->` twice; fix the file: keep one",
        ),
    ],
)
def test_results_file_with_unmatched_markers_refused_before_the_run(tmp_path, text, needle):
    results = tmp_path / "RESULTS.md"
    results.write_text(text)
    argv = ["bench", "tune", "--from-jsonl", str(tmp_path / "none.jsonl")]
    refused([*argv, "--results", str(results)], needle)
    with pytest.raises(ConfigError, match="fix the file"):
        update_results(results, "kernel", "distgp bench kernel", "NEW")
    assert results.read_text() == text


def test_results_sections_replaced_in_place(tmp_path):
    results = tmp_path / "RESULTS.md"
    update_results(results, "kernel", "c", "K1")
    update_results(results, "admm", "c", "A1")
    update_results(results, "kernel", "c", "K2")
    text = results.read_text()
    assert "K2" in text and "A1" in text and "K1" not in text


def parsed(argv: list[str]):
    from distgp.cli import build_parser

    return build_parser().parse_args(argv)


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (
            "faults --quick --data d.mat --agents 2 --runs 2 --rounds 6 --round-timeout 2 "
            "--seed 3 --data-dir x --json j.json --results R.md",
            "distgp bench faults --data d.mat --agents 2 --runs 2 --rounds 6 --round-timeout 2 "
            "--seed 3 --quick",
        ),
        (
            "kernel --quick --datasets ale80 --seed 1 --timeout 0.5 --jobs 1 --sm-seeds 2",
            "distgp bench kernel --quick --datasets ale80 --seed 1 --timeout 0.5 --sm-seeds 2 "
            "--jobs 1",
        ),
        (
            "admm --agents 2,4 --seed 2 --timeout 60 --skip-ray",
            "distgp bench admm --seed 2 --timeout 60 --agents 2,4 --skip-ray",
        ),
        (
            "bkb --functions --methods random,tpe --function-budget 20 --seed 4",
            "distgp bench bkb --function-budget 20 --seed 4 --functions --methods random,tpe",
        ),
        ("threads --repeats 2 --load 1", "distgp bench threads --repeats 2 --load 1"),
    ],
)
def test_recorded_command_line_carries_every_option_that_shaped_the_run(argv, command):
    from distgp.bench.report import command_line

    assert command_line(parsed(["bench", *argv.split()])) == command


def test_json_payload_records_the_command_and_options(tmp_path, capsys):
    import json

    from distgp.bench.report import publish

    args = parsed(["bench", "faults", "--rounds", "6", "--json", str(tmp_path / "f.json")])
    publish(args, "faults", "TABLE", {"suite": "faults"})
    payload = json.loads((tmp_path / "f.json").read_text())
    assert payload["command"] == "distgp bench faults --rounds 6"
    assert payload["options"] == {"rounds": 6}
    assert capsys.readouterr().out == "TABLE\n"


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (
            "--functions --budget 5",
            "--budget has no effect on --functions (it applies to the default run, --scale, "
            "--side-by-side); drop it",
        ),
        ("--functions --arms 7", "--arms has no effect on --functions"),
        ("--scale --quick", "--quick has no effect on --scale"),
        ("--scale --seeds 2", "--seeds has no effect on --scale"),
        ("--scale --function-budget 5", "--function-budget has no effect on --scale"),
        ("--side-by-side --quick", "--quick has no effect on --side-by-side"),
        ("--side-by-side --arms 5", "--arms has no effect on --side-by-side"),
        ("--side-by-side --function-budget 5", "--function-budget has no effect on --side-by"),
        ("--skip-functions --function-budget 5", "--function-budget sets the test functions"),
        ("--methods random", "--methods applies only with --functions; add it or drop --methods"),
    ],
)
def test_bkb_option_without_effect_on_the_part_refused(argv, needle):
    refused(["bench", "bkb", *argv.split()], needle)


def test_bkb_functions_quick_is_honoured(tmp_path):
    import json

    out, results = tmp_path / "f.json", tmp_path / "R.md"
    argv = ["bench", "bkb", "--functions", "--quick", "--methods", "random"]
    code, _, err = run_cli([*argv, "--json", str(out), "--results", str(results)])
    assert code == 0, err
    payload = json.loads(out.read_text())
    assert (payload["budget"], payload["seeds"]) == (40, 1)
    assert "`distgp bench bkb --quick --functions --methods random`" in results.read_text()


def tune_record(dataset: str, budget: int = 2, agents: int = 1) -> dict:
    from distgp.bench.tune import RECORD_KEYS

    record = dict.fromkeys(RECORD_KEYS, 1.0) | {"dataset": dataset, "chosen": "trend=none"}
    return record | {"budget": budget, "agents": agents, "tuned_better_than_sharded": None}


def write_jsonl(path, records: list[dict]) -> str:
    import json

    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def test_tune_from_jsonl_records_the_rows_budget_and_agents(tmp_path):
    import json

    jsonl = write_jsonl(tmp_path / "t.jsonl", [tune_record("ale80"), tune_record("clay")])
    out, results = tmp_path / "t.json", tmp_path / "R.md"
    argv = ["bench", "tune", "--from-jsonl", jsonl, "--json", str(out), "--results", str(results)]
    code, _, err = run_cli(argv)
    assert code == 0, err
    command = "distgp bench tune --datasets ale80,clay --budget 2 --agents 1"
    assert f"`{command}`" in results.read_text()
    payload = json.loads(out.read_text())
    assert (payload["suite"], payload["budget"], payload["agents"]) == ("tune", 2, 1)
    assert payload["command"] == command


@pytest.mark.parametrize(
    ("records", "needle"),
    [
        ([tune_record("ale80"), tune_record("clay", agents=4)], "line 2 has agents 4, line 1 1"),
        ([tune_record("ale80"), tune_record("clay", budget=16)], "line 2 has budget 16, line 1 2"),
        ([tune_record("ale80"), tune_record("ale80")], "records ale80 on lines 1 and 2; keep"),
        ([], "holds no record"),
    ],
)
def test_tune_from_jsonl_of_more_than_one_run_refused(tmp_path, records, needle):
    jsonl = write_jsonl(tmp_path / "t.jsonl", records)
    refused(["bench", "tune", "--from-jsonl", jsonl], needle)


@pytest.mark.parametrize("option", ["--quick", "--budget 4", "--agents 2", "--datasets ale80"])
def test_tune_from_jsonl_refuses_options_of_a_measured_run(tmp_path, option):
    jsonl = write_jsonl(tmp_path / "t.jsonl", [tune_record("ale80")])
    needle = f"{option.split()[0]} has no effect with --from-jsonl"
    refused(["bench", "tune", "--from-jsonl", jsonl, *option.split()], needle)


def test_config_file_gives_options_and_flags_override_it(tmp_path):
    from distgp.bench.report import command_line

    config = tmp_path / "k.yaml"
    config.write_text("datasets: [ale80, clay]\nsm-seeds: 3\nquick: true\ntimeout: 0.5\njobs: 1\n")
    args = parsed(["bench", "kernel", "--config", str(config), "--sm-seeds", "4", "--jobs", "2"])
    assert (args.datasets, args.sm_seeds, args.quick, args.timeout) == ("ale80,clay", 4, True, 0.5)
    assert args.jobs == 2
    expected = "distgp bench kernel --quick --datasets ale80,clay --timeout 0.5 --sm-seeds 4"
    assert command_line(args) == expected
    # an on/off option the file turns on is undone by its --no- flag (there was none)
    args = parsed(["bench", "kernel", "--config", str(config), "--no-quick"])
    assert args.quick is False and "--quick" not in command_line(args)
    assert parsed(["bench", "kernel", "--quick"]).quick is True


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (
            "speed: 2\n",
            "unknown key speed; known keys: out, json, results, quick, datasets, data-dir, seed, "
            "timeout, skip-baselines, defaults-only, sm-seeds, jobs",
        ),
        ("jobs: 0\n", ": jobs: expected an integer of at least 1, got 0"),
        ("quick: 'yes'\n", ": quick must be true or false, got 'yes'"),
        ("seed: null\n", ": seed takes the value of --seed, got None"),
        ("jobs: 1\njobs: 2\n", "sets 'jobs' (line 2) twice"),
    ],
)
def test_bad_config_file_refused(tmp_path, text, needle):
    config = tmp_path / "k.yaml"
    config.write_text(text)
    refused(["bench", "kernel", "--config", str(config)], needle)


def test_out_folder_holds_the_json_and_the_section(tmp_path):
    import json

    jsonl = write_jsonl(tmp_path / "t.jsonl", [tune_record("ale80")])
    out = tmp_path / "run"
    code, _, err = run_cli(["bench", "tune", "--from-jsonl", jsonl, "--out", str(out)])
    assert code == 0, err
    assert json.loads((out / "tune.json").read_text())["budget"] == 2
    text = (out / "RESULTS.md").read_text()
    assert "<!-- tune:start -->" in text
    assert "`distgp bench tune --datasets ale80 --budget 2 --agents 1`" in text


def test_out_that_is_a_file_refused_before_the_run(tmp_path):
    jsonl = write_jsonl(tmp_path / "t.jsonl", [tune_record("ale80")])
    refused(["bench", "tune", "--from-jsonl", jsonl, "--out", jsonl], "is not a folder")


def test_help_names_the_no_forms_of_on_off_options():
    """``--no-quick`` undoes a config file's ``quick: true``; the help says it exists."""
    code, out, _ = run_cli(["bench", "kernel", "--help"])
    assert code == 0
    assert "--no-quick" in " ".join(out.split())


def test_kernel_sm_seed_killed_by_timeout_counts_as_failed(data_dir, monkeypatch):
    # run_isolated's {"error": ...} for a killed run has no peak_rss_mb: summing up the seeds
    # raised KeyError after every run, losing the suite's results (audit 17 F6).
    from distgp.bench import kernel

    options = []

    def fake_run_isolated(tasks, jobs, timeout, progress):
        out = []
        for task in tasks:
            options.append((task.runner, task.options))
            if task.runner == "sm" and task.options["seed"] == 1:
                out.append({"error": f"killed after the {timeout:g} s limit (--timeout)"})
                continue
            loss = -1.0 if task.options.get("seed") == 2 else 0.0
            fields = {"mse": 1.0 + task.options.get("seed", 0), "nlpd": 1.0, "coverage95": 1.0}
            base = {"seconds": 1.0, "n_hyper": 1, "n_condition": 1, "init": "x", "loss": loss}
            base.update(active=1, components=2, noise_fraction=0.1)
            out.append({**fields, **base, "seed": task.options.get("seed"), "peak_rss_mb": 9.0})
        return out

    monkeypatch.setattr(kernel, "run_isolated", fake_run_isolated)
    settings = kernel.Settings(
        quick=False,
        baselines=True,
        variants=False,
        seed=0,
        sm_seeds=3,
        jobs=1,
        timeout=1.0,
        gsmp_iterations=None,
        baseline_iterations=200,
    )
    [row] = kernel.benchmark(data_dir, ["ale80"], settings, lambda _: None)
    sm = row["models"]["sm"]
    assert (sm["seed"], sm["mse"], sm["failed_seeds"], sm["peak_rss_mb"]) == (2, 3.0, 1, 9.0)
    # the restarts share their training subsets, so that their losses compare
    assert {o["subset_seed"] for runner, o in options if runner == "sm"} == {0}
    text = kernel.render([row], settings)
    assert "SM(10) best of 3" in text
    assert "ale80 sm: 1 of 3 seeds failed (killed after the 1 s limit (--timeout))" in text


def _summary_row(name: str, dims: int = 1, **models: dict) -> dict:
    return {
        "dataset": name,
        "n": 80,
        "dims": dims,
        "series": dims == 1,
        "paper_mse": None,
        "models": models,
        "trivial": {"mean": {"mse": 9.0}},
        "skipped": {},
    }


def test_kernel_target_lines_count_a_failed_comparator_as_not_met():
    # A failed ETS, floor or memory measurement shrank a denominator or dropped the line
    # (audit 17 F8): it counts as not met and is named.
    from distgp.bench.kernel import summary_lines

    rows = [
        _summary_row("a", **{"gsmp-data": {"mse": 1.0, "seconds": 1.0}, "ets": {"mse": 2.0}}),
        _summary_row("b", **{"gsmp-data": {"mse": 1.0, "seconds": 1.0}, "ets": {"error": "x"}}),
        _summary_row("concrete824", 8, **{"gsmp-data": {"error": "killed"}}),
    ]
    text = "\n".join(summary_lines(rows))
    assert "below AICc-chosen ETS on 1 of 2 (target >= 6 of 9): a; not measured" in text
    assert "not met: b" in text
    assert "concrete824 fit peak memory not measured (target < 2048 MiB: missed)" in text


def test_kernel_floor_target_counts_every_multi_dimensional_dataset():
    from distgp.bench.kernel import _floor_section

    def floor(name: str, wall: float | None, cpu: float | None) -> dict:
        return {"dataset": name, "P": 4, "of floor": wall, "of floor (CPU)": cpu}

    rows = [_summary_row(name, 4) for name in ("ale80", "airfoil600", "cccp1000")]
    rows.append(_summary_row("CO2", 1))
    floors = [floor("ale80", None, None), floor("airfoil600", 0.5, 0.4)]
    [line] = [x for x in _floor_section(rows, floors) if x.startswith("* each")]
    assert "on 1 of 3 multi-dimensional datasets in wall time (airfoil600)" in line
    assert line.endswith("not measured, counted as not met: ale80, cccp1000")
    [line] = [x for x in _floor_section(rows, []) if x]
    assert "on 0 of 3" in line
