"""The bandit package is pure algorithm: importing it pulls in no backend, Ray, agents or driver."""

from __future__ import annotations

import subprocess
import sys

FORBIDDEN = ("ray", "distgp.agents", "distgp.driver", "distgp.optimize")


def test_importing_the_bandit_package_loads_no_backend_or_driver():
    code = (
        "import sys, pkgutil, importlib, distgp.bandit as b\n"
        "for m in pkgutil.iter_modules(b.__path__):\n"
        "    importlib.import_module('distgp.bandit.' + m.name)\n"
        f"bad = sorted(n for n in sys.modules if n.split('.')[0] == 'ray'\n"
        f"             or n.startswith({FORBIDDEN[1:]!r}))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
