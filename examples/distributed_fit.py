"""Learn one GSMP kernel with 4 agents on a local Ray instance, from Python.

    python examples/distributed_fit.py [path/to/airfoil600.mat]

The one change for a Ray cluster: pass ``address="auto"`` (on a cluster node) or
``address="HEAD_IP:6379"`` to ``GSMPRegressor``; the agents are then spread over the cluster's
nodes.
"""

from __future__ import annotations

import sys

from distgp import GSMPRegressor
from distgp.data import load_dataset


def main(source: str) -> None:
    data = load_dataset(source)
    # address="auto" joins a running Ray cluster instead of starting a local instance
    model = GSMPRegressor(bits=8, rounds=50, agents=4, backend="ray", random_state=0)
    model.fit(data.X_train, data.y_train)
    mean = model.predict(data.X_test)
    mse = float(((mean - data.y_test) ** 2).mean())
    print(f"{data.name}: {len(data.y_train)} training points over 4 agents")
    print(f"rounds {model.rounds_}, converged {model.converged_}")
    print(f"bits sent {model.bits_sent_} = {model.bits_sent_ / model.bits_float64_:.3f} of float64")
    print(f"active components {model.active_components_} of {len(model.weights_)}")
    print(f"test MSE {mse:.4g}")
    for record in model.history_[:3]:
        print(
            f"round {record.round}: primal {record.primal_residual:.3g}, dual "
            f"{record.dual_residual:.3g}, rho {record.rho:.3g}, bits {record.bits}"
        )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "builtin:co2")
