"""Dates as a time axis (distgp.calendar) and through fit and predict."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from distgp import calendar
from distgp.cli import main
from distgp.data import load_dataset
from distgp.gp import GSMPModel


def dates(texts):
    return calendar.parse_dates(pd.Series(texts), "column date")


@pytest.mark.parametrize(
    ("texts", "unit"),
    [
        (["2020-01-31", "2020-02-29", "2020-03-31", "2020-04-30"], "month"),
        (["1958-03", "1958-04", "1958-06"], "month"),
        (["2020-01-15", "2020-02-15", "2020-03-15"], "month"),
        (["2020-01-01", "2020-04-01", "2020-07-01"], "quarter"),
        (["1999-07-01", "2000-07-01", "2001-07-01"], "year"),
        (["2024-01-01", "2024-01-08", "2024-01-15"], "week"),
        (["2024-02-27", "2024-02-28", "2024-02-29", "2024-03-01"], "day"),
        (["2021-01-01T00:00", "2021-01-01T01:00", "2021-01-01T02:00"], "hour"),
        (["2021-01-01T00:00:00", "2021-01-01T00:05:00", "2021-01-01T00:10:00"], "minute"),
        (["2024-01-01T00:00:00.5", "2024-01-01T00:00:01.5"], "second"),
    ],
)
def test_dates_read_as_whole_steps_of_their_unit_and_back(texts, unit):
    read = dates(texts)
    assert calendar.unit_of(read) == unit
    values = calendar.to_numbers(read, unit)
    steps = np.diff(values)
    assert np.allclose(steps, np.round(steps), atol=0.01)  # month ends included
    assert calendar.to_dates(values, unit).equals(read)


def test_the_epoch_is_fixed_so_files_read_apart_agree():
    assert calendar.to_numbers(dates(["1970-01-01", "2000-03-01"]), "month").tolist() == [0, 362]
    assert calendar.to_numbers(dates(["1969-12-31"]), "day").tolist() == [-1]


def test_times_with_an_offset_are_read_in_utc():
    read = dates(["2024-01-01T00:00:00+02:00", "2024-01-02T00:00:00+02:00"])
    assert calendar.format_dates(read) == ["2023-12-31T22:00:00", "2024-01-01T22:00:00"]


@pytest.mark.parametrize(
    ("last", "unit", "step", "want"),
    [
        ("2020-11-30", "month", 1.0, ["2020-12-31", "2021-01-31", "2021-02-28"]),
        ("2020-11-15", "month", 1.0, ["2020-12-15", "2021-01-15", "2021-02-15"]),
        ("2020-10-01", "quarter", 1.0, ["2021-01-01", "2021-04-01", "2021-07-01"]),
        ("2020-01-01", "month", 2.0, ["2020-03-01", "2020-05-01", "2020-07-01"]),
        ("2024-02-28", "day", 1.0, ["2024-02-29", "2024-03-01", "2024-03-02"]),
    ],
)
def test_following_dates_keep_to_the_calendar(last, unit, step, want):
    after = calendar.following(dates([last])[0], unit, step, 3)
    assert calendar.format_dates(after) == want


def test_text_that_is_not_dates_is_not_read_as_dates():
    assert dates(["red", "green"]) is None
    assert dates(["01/02/2020", "01/03/2020"]) is None


def monthly_csv(path, months=48, day="01"):
    """A trending monthly series with a yearly season, dated by month."""
    t = np.arange(months)
    frame = pd.DataFrame(
        {
            "month": [f"{2001 + m // 12}-{m % 12 + 1:02d}-{day}" for m in t],
            "sales": 100 + 0.5 * t + 5 * np.sin(2 * np.pi * t / 12),
        }
    )
    frame.to_csv(path, index=False)
    return frame


def test_a_csv_of_dates_is_a_series_in_months(tmp_path):
    monthly_csv(tmp_path / "sales.csv")
    data = load_dataset(str(tmp_path / "sales.csv"))
    assert data.time_units == {"month": "month"}
    assert data.series
    assert np.allclose(np.diff(data.X_train[:, 0]), 1.0)


def test_fit_and_predict_speak_dates(tmp_path, capsys):
    monthly_csv(tmp_path / "sales.csv")
    fit = ["fit", "--data", str(tmp_path / "sales.csv"), "--test-fraction", "0"]
    assert main([*fit, "--out", str(tmp_path / "fit")]) == 0
    assert "changes repeat every 12 months" in capsys.readouterr().err
    model = GSMPModel.load(tmp_path / "fit" / "model.npz")
    assert model.time_units == {"month": "month"}
    ahead = tmp_path / "ahead"
    predict = ["predict", "--model", str(tmp_path / "fit"), "--quiet"]
    assert main([*predict, "--ahead", "3", "--out", str(ahead)]) == 0
    forecast = pd.read_csv(ahead / "predictions.csv")
    assert forecast["month"].tolist() == ["2005-01-01", "2005-02-01", "2005-03-01"]
    truth = 100 + 0.5 * np.arange(48, 51) + 5 * np.sin(2 * np.pi * np.arange(48, 51) / 12)
    assert np.max(np.abs(forecast["mean"] - truth)) < 1.0
    assert (ahead / "forecast.png").stat().st_size > 0
    # a file of dates is predicted at them, and written back as dates
    future = pd.DataFrame({"month": ["2005-03-01", "2005-01-01"]})
    future.to_csv(tmp_path / "future.csv", index=False)
    at = tmp_path / "at"
    assert main([*predict, "--data", str(tmp_path / "future.csv"), "--out", str(at)]) == 0
    written = pd.read_csv(at / "predictions.csv")
    assert written["month"].tolist() == ["2005-03-01", "2005-01-01"]
    assert written["mean"].tolist() == pytest.approx(forecast["mean"][[2, 0]].tolist(), rel=1e-9)
    # numbers where the model was fitted on dates are refused, naming the fix
    pd.DataFrame({"month": [49.0]}).to_csv(tmp_path / "numbers.csv", index=False)
    refused = tmp_path / "refused"
    assert main([*predict, "--data", str(tmp_path / "numbers.csv"), "--out", str(refused)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "column month of numbers.csv does not hold ISO 8601 dates" in err
    assert "YYYY-MM-DD" in err
    assert not refused.exists()


def test_a_test_file_of_dates_is_read_in_the_training_units(tmp_path):
    frame = monthly_csv(tmp_path / "sales.csv", months=60)
    frame[:48].to_csv(tmp_path / "train.csv", index=False)
    frame[48:].to_csv(tmp_path / "test.csv", index=False)
    args = ["fit", "--data", str(tmp_path / "train.csv"), "--test", str(tmp_path / "test.csv")]
    assert main([*args, "--quiet", "--no-plots", "--out", str(tmp_path / "fit")]) == 0
    metrics = json.loads((tmp_path / "fit" / "metrics.json").read_text())
    assert metrics["mse"] < 1.0  # a test split read in other units would miss the season
