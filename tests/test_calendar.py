"""Dates as a time axis (distgp.calendar) and through fit and predict."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from distgp import calendar
from distgp.cli import main
from distgp.data import load_dataset
from distgp.exceptions import ConfigError, InputDataError
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
    texts = ["2024-01-01T00:00:00+02:00", "2024-01-02T00:00:00+02:00"]
    read = dates(texts)
    assert calendar.format_dates(read) == ["2023-12-31T22:00:00", "2024-01-01T22:00:00"]
    assert calendar.has_offsets(pd.Series(texts))
    assert calendar.format_dates(read, utc=True) == ["2023-12-31T22:00:00Z", "2024-01-01T22:00:00Z"]
    midnights = dates(["2024-01-01T02:00+02:00", "2024-01-02T02:00+02:00"])  # dates alone: local
    assert calendar.format_dates(midnights, utc=True) == [
        "2024-01-01T00:00:00Z",
        "2024-01-02T00:00:00Z",
    ]
    for naive in (["2024-01-01", "2024-01-02"], ["2024-01-01T13:00", "2024-01-01 14:00:00"]):
        assert not calendar.has_offsets(pd.Series(naive))


def test_predictions_of_times_read_with_an_offset_are_written_in_utc(tmp_path):
    """Times given with offsets come back marked Z (UTC); naive ones stay naive."""
    hours = pd.date_range("2021-06-01", periods=48, freq="h")
    y = 5 + np.sin(np.arange(48) / 4)
    for name, texts in (
        ("tz", hours.strftime("%Y-%m-%dT%H:%M+02:00")),
        ("naive", hours.strftime("%Y-%m-%dT%H:%M")),
    ):
        pd.DataFrame({"date": texts, "y": y}).to_csv(tmp_path / f"{name}.csv", index=False)
        fit = ["fit", "--data", str(tmp_path / f"{name}.csv"), "--test-fraction", "0"]
        assert main([*fit, "--no-plots", "--quiet", "--out", str(tmp_path / name)]) == 0
        out = tmp_path / f"{name}-ahead"
        assert (
            main(
                [
                    "predict",
                    "--model",
                    str(tmp_path / name),
                    "--ahead",
                    "2",
                    "--quiet",
                    "--out",
                    str(out),
                ]
            )
            == 0
        )
        written = pd.read_csv(out / "predictions.csv")["date"].tolist()
        if name == "tz":  # the last point, 2021-06-02T23:00+02:00, is 21:00 UTC
            assert written == ["2021-06-02T22:00:00Z", "2021-06-02T23:00:00Z"]
        else:
            assert written == ["2021-06-03T00:00:00", "2021-06-03T01:00:00"]
    assert GSMPModel.load(tmp_path / "tz").utc_inputs == ("date",)
    assert GSMPModel.load(tmp_path / "naive").utc_inputs == ()
    # at a file's inputs, that file's times decide (the model's training file did before: an
    # offset time came back naive, 2 hours off; a naive one came back claiming UTC)
    later = pd.date_range("2021-06-03T12:00", periods=2, freq="h")
    queries = {
        "tz": later.strftime("%Y-%m-%dT%H:%M+02:00"),
        "naive": later.strftime("%Y-%m-%dT%H:%M"),
    }
    for model in ("tz", "naive"):
        for query, texts in queries.items():
            path = tmp_path / f"query-{query}.csv"
            pd.DataFrame({"date": texts}).to_csv(path, index=False)
            out = tmp_path / f"{model}-at-{query}"
            predict = ["predict", "--model", str(tmp_path / model), "--data", str(path)]
            assert main([*predict, "--quiet", "--out", str(out)]) == 0
            written = pd.read_csv(out / "predictions.csv")["date"].tolist()
            assert written == (
                ["2021-06-03T10:00:00Z", "2021-06-03T11:00:00Z"]
                if query == "tz"
                else ["2021-06-03T12:00:00", "2021-06-03T13:00:00"]
            ), (model, query)


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


def series_after(start: str, freq: str, periods: int, count: int) -> tuple[str, list[str]]:
    """A series' unit and the ``count`` dates following it as fit and predict find them."""
    if freq == "30th":  # the 30th of every month, the last day where shorter
        read = pd.DatetimeIndex(
            [pd.Timestamp(start) + pd.DateOffset(months=i) for i in range(periods)]
        )
    else:
        read = pd.DatetimeIndex(pd.date_range(start, periods=periods, freq=freq))
    unit = calendar.unit_of(read)
    values = calendar.to_numbers(read, unit)
    step = float(np.median(np.diff(values)))
    last = calendar.to_dates(values[-1:], unit)[0]
    rule = calendar.series_rule(calendar.to_dates(values, unit), unit)
    return unit, calendar.format_dates(calendar.following(last, unit, step, count, rule))


@pytest.mark.parametrize(
    ("start", "freq", "periods", "unit", "want"),
    [
        # the 30th, ending on April's last day: the 30th again, not May 31
        ("2011-05-30", "30th", 48, "month", ["2015-05-30", "2015-06-30", "2015-07-30"]),
        # 45 or 28 days apart is no whole number of months: counted in weeks, stepped in days
        ("2018-01-07", "45D", 50, "week", ["2024-03-06", "2024-04-20", "2024-06-04"]),
        ("2018-01-07", "28D", 60, "week", ["2022-08-14", "2022-09-11", "2022-10-09"]),
        # business days continue on weekdays
        ("2024-05-01", "B", 33, "day", ["2024-06-17", "2024-06-18", "2024-06-19"]),
        # sub-second steps keep their microseconds
        (
            "2024-05-01T12:00:00",
            "100ms",
            100,
            "second",
            [
                "2024-05-01T12:00:10.000000",
                "2024-05-01T12:00:10.100000",
                "2024-05-01T12:00:10.200000",
            ],
        ),
    ],
)
def test_a_series_continues_as_it_went(start, freq, periods, unit, want):
    assert series_after(start, freq, periods, 3) == (unit, want)


def test_a_28_day_series_of_dates_is_a_series(tmp_path):
    days = pd.date_range("2018-01-07", periods=60, freq="28D")
    frame = pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "y": np.sin(np.arange(60) / 3)})
    frame.to_csv(tmp_path / "four_weekly.csv", index=False)
    data = load_dataset(str(tmp_path / "four_weekly.csv"))
    assert data.series and data.time_units == {"date": "week"}


def test_dates_far_from_1970_come_back_exactly():
    read = dates(["2200-01-16T10:00:00", "2250-01-05T15:00:00", "2255-03-01", "2437-11-30"])
    for unit in ("month", "quarter", "year", "week", "day", "second"):
        back = calendar.to_dates(calendar.to_numbers(read, unit), unit)
        assert back.equals(read), unit


def test_a_forecast_past_year_9999_is_refused():
    with pytest.raises(ConfigError, match="pass the last date ISO 8601 writes"):
        calendar.following(dates(["2019-01-01"])[0], "year", 1.0, 8000)


def test_a_bad_value_in_a_date_column_is_named_by_row():
    with pytest.raises(InputDataError, match=r"column date, row 4: '2015-02-30' is not an ISO"):
        dates(["2015-01-30", "2015-03-30", "2015-02-30"])
    with pytest.raises(InputDataError, match=r"has no date in 1 row\(s\) \(first: row 3\)"):
        dates(["2015-01-30", None, "2015-03-30"])
    assert calendar.format_dates(dates([" 2015-01-30 ", "2015-02-28"])) == [
        "2015-01-30",
        "2015-02-28",
    ]


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


def test_dates_given_to_a_model_of_numbers_are_named(tmp_path, capsys):
    frame = pd.DataFrame({"t": np.arange(30.0), "y": np.sin(np.arange(30) / 3)})
    frame.to_csv(tmp_path / "numbers.csv", index=False)
    fit = ["fit", "--data", str(tmp_path / "numbers.csv"), "--quiet", "--no-plots"]
    assert main([*fit, "--out", str(tmp_path / "fit")]) == 0
    pd.DataFrame({"t": ["2015-03-01", "2015-04-01"]}).to_csv(tmp_path / "d.csv", index=False)
    predict = ["predict", "--model", str(tmp_path / "fit"), "--data", str(tmp_path / "d.csv")]
    assert main([*predict, "--out", str(tmp_path / "p"), "--quiet"]) == 2
    assert "column t of d.csv holds dates, but the model was fitted on numbers in t" in (
        capsys.readouterr().err
    )


def test_a_builtin_source_is_matched_by_name_without_a_note(tmp_path, capsys):
    fit = ["fit", "--data", "builtin:co2", "--trend", "linear", "--max-iterations", "5"]
    assert main([*fit, "--no-plots", "--quiet", "--out", str(tmp_path / "fit")]) == 0
    predict = ["predict", "--model", str(tmp_path / "fit"), "--data", "builtin:co2"]
    assert main([*predict, "--out", str(tmp_path / "p")]) == 0
    assert "no named columns" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("column", "note"),
    [
        (
            [f"2024-10-{d}T{h:02d}:00" for d in (26, 27) for h in range(24)]
            + ["2024-10-27T02:00"],  # the autumn hour of a local clock, twice
            "the dates in t are no series (1 date(s) appear more than once (first: "
            "2024-10-27T02:00:00))",
        ),
        ([201001 + 100 * (m // 12) + m % 12 for m in range(24)], "t looks like dates written "),
        ([20100101 + 10000 * (m // 12) + 100 * (m % 12) for m in range(24)], "t looks like dates"),
    ],
)
def test_an_input_that_reads_as_time_but_is_no_series_is_noted(tmp_path, capsys, column, note):
    frame = pd.DataFrame({"t": column, "y": np.sin(np.arange(len(column)))})
    frame.to_csv(tmp_path / "t.csv", index=False)
    fit = ["fit", "--data", str(tmp_path / "t.csv"), "--max-iterations", "3", "--no-plots"]
    assert main([*fit, "--out", str(tmp_path / "fit")]) == 0
    assert note in capsys.readouterr().err


def test_a_date_column_the_model_does_not_read_is_left_alone(tmp_path):
    frame = pd.DataFrame({"t": np.arange(30.0), "y": np.sin(np.arange(30) / 3)})
    frame.to_csv(tmp_path / "numbers.csv", index=False)
    fit = ["fit", "--data", str(tmp_path / "numbers.csv"), "--quiet", "--no-plots"]
    assert main([*fit, "--out", str(tmp_path / "fit")]) == 0
    extra = pd.DataFrame({"t": [30.0, 31.0], "recorded": ["2015-03-01", "2015-04-01"]})
    extra.to_csv(tmp_path / "extra.csv", index=False)
    predict = ["predict", "--model", str(tmp_path / "fit"), "--data", str(tmp_path / "extra.csv")]
    assert main([*predict, "--out", str(tmp_path / "p"), "--quiet"]) == 0
