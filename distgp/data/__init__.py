"""Datasets: loading, validation, time indices, standardisation statistics and sharding.

Sources (``--data SOURCE``):

* ``.mat``: MATLAB files with ``xtrain``, ``ytrain``, ``xtest``, ``ytest`` (the SLIM-KL splits).
* ``.csv``: a header row, numeric columns (or ISO 8601 dates); ``target`` names the output
  column (default: last).
* ``.npz``: arrays ``X`` and ``y``, or ``xtrain``/``ytrain``/``xtest``/``ytest``.
* ``builtin:co2``: monthly Mauna Loa CO2 (statsmodels), the embedded default.

Files without a stored test split are split with ``test_fraction``: randomly (seeded) for
regression data, or the last points for a 1-D series.

Modules: :mod:`~distgp.data.readers` (sources into a :class:`Dataset`, test and prediction
files), :mod:`~distgp.data.csvfiles` (CSV columns and dates), :mod:`~distgp.data.checks`
(validation at the entry), :mod:`~distgp.data.series` (time indices),
:mod:`~distgp.data.scaling` (standardisation from shard summaries) and
:mod:`~distgp.data.shards` (points over agents).
"""

from distgp.data.checks import (
    MAX_ABS_VALUE,
    check_varying_inputs,
    check_X,
    check_X_y,
    check_y,
    has_spread,
)
from distgp.data.readers import (
    Dataset,
    default_input_names,
    is_csv_source,
    load_dataset,
    load_prediction_inputs,
    load_test_file,
    with_test_file,
)
from distgp.data.scaling import (
    Scaler,
    ShardSummary,
    refuse_flat_data,
    varying_columns,
)
from distgp.data.series import in_time_order, is_series, step_multiples, time_input_note
from distgp.data.shards import SHARD_METHODS, agent_sites, array_digest, shard_indices, site_labels

__all__ = [
    "MAX_ABS_VALUE",
    "SHARD_METHODS",
    "Dataset",
    "Scaler",
    "ShardSummary",
    "agent_sites",
    "array_digest",
    "check_X",
    "check_X_y",
    "check_varying_inputs",
    "check_y",
    "default_input_names",
    "has_spread",
    "in_time_order",
    "is_csv_source",
    "is_series",
    "load_dataset",
    "load_prediction_inputs",
    "load_test_file",
    "refuse_flat_data",
    "shard_indices",
    "site_labels",
    "step_multiples",
    "time_input_note",
    "varying_columns",
    "with_test_file",
]
