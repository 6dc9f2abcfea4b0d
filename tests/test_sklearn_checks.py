"""GSMPRegressor against scikit-learn's own estimator checks and tools.

``parametrize_with_checks`` runs every check of the installed scikit-learn (pinned in the dev
extras). A check that could not pass would go into ``expected_failed_checks`` with its reason
(scikit-learn then runs it as a strict xfail); none needs to: all pass.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from sklearn.base import clone, is_regressor
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from distgp import GSMPRegressor
from tests.helpers import sinusoids

# Small settings so that each of the ~50 checks fits in well under a second.
SMALL = {"components": 12, "max_iterations": 20}


@parametrize_with_checks([GSMPRegressor(**SMALL)])
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        check(estimator)


def test_is_a_regressor_and_clones():
    model = GSMPRegressor(agents=3, backend="inline", bits=4)
    assert is_regressor(model)
    twin = clone(model)
    assert twin.get_params() == model.get_params() and twin is not model


def test_cross_val_score_and_pipeline():
    x, y = sinusoids(90)
    folds = KFold(3, shuffle=True, random_state=0)
    scores = cross_val_score(GSMPRegressor(**SMALL), x, y, cv=folds)
    assert scores.shape == (3,) and np.all(np.isfinite(scores)) and scores.min() > 0.5
    pipe = make_pipeline(StandardScaler(), GSMPRegressor(**SMALL))
    piped = cross_val_score(pipe, x, y, cv=folds)
    assert np.all(np.isfinite(piped)) and piped.min() > 0.5
    pipe.fit(x, y)
    assert pipe.predict(x[:4]).shape == (4,) and pipe.score(x, y) > 0.8


def test_grid_search_over_components_and_agents():
    x, y = sinusoids(80)
    search = GridSearchCV(
        GSMPRegressor(max_iterations=20, backend="inline", rounds=4, local_iterations=2),
        {"components": [4, 24], "agents": [1, 2]},
        cv=KFold(2, shuffle=True, random_state=0),
    )
    search.fit(x, y)
    assert len(search.cv_results_["params"]) == 4
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    assert search.best_estimator_.n_features_in_ == 1
    assert search.best_params_["components"] in (4, 24)


def test_warm_start_reuses_the_previous_weights():
    x, y = sinusoids(60)
    cold = GSMPRegressor(components=20, max_iterations=3).fit(x, y)
    warm = GSMPRegressor(components=20, max_iterations=3, warm_start=True).fit(x, y)
    again = clone(warm).set_params(warm_start=True).fit(x, y)
    warm.fit(x, y)  # starts from its own first fit: three more iterations
    assert warm.objective_ < cold.objective_
    assert again.objective_ == pytest.approx(cold.objective_)


def test_random_state_none_draws_a_seed():
    x, y = sinusoids(40)
    model = GSMPRegressor(components=8, max_iterations=5, random_state=None).fit(x, y)
    assert np.isfinite(model.objective_)


def test_array_api_check_with_numpy_in_a_fresh_process():
    """``check_array_api_input`` (numpy namespace) needs ``SCIPY_ARRAY_API=1`` before scipy is
    imported, so ``parametrize_with_checks`` skips it in this process; it runs here instead."""
    code = (
        "from sklearn.utils.estimator_checks import check_array_api_input\n"
        "from distgp import GSMPRegressor\n"
        f"check_array_api_input('GSMPRegressor', GSMPRegressor(**{SMALL!r}), "
        "array_namespace='numpy', expect_only_array_outputs=False)\n"
    )
    env = {**os.environ, "SCIPY_ARRAY_API": "1"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
