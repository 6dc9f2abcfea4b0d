"""``distgp bench``: options refused up front, recorded command lines, --config and --out."""

from __future__ import annotations

import contextlib
import io

from distgp.cli import main


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
