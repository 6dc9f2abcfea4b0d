"""The algorithm notes the code cites live in the repository (docs/)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_cited_note_exists():
    cited = set()
    for path in [*ROOT.joinpath("distgp").rglob("*.py"), ROOT / "README.md"]:
        cited |= set(re.findall(r"docs/[a-z_]+\.md", path.read_text()))
    assert {"docs/gsmp.md", "docs/dsca.md", "docs/admm.md", "docs/bkb.md"} <= cited
    missing = sorted(c for c in cited if not (ROOT / c).is_file())
    assert missing == []


def test_configuration_reference_is_generated_from_the_settings():
    """docs/configuration.md is what the settings say (regenerate it when they change)."""
    from distgp.cli.reference import reference

    assert (ROOT / "docs/configuration.md").read_text() == reference(), (
        "docs/configuration.md is stale: python -m distgp.cli.reference > docs/configuration.md"
    )
