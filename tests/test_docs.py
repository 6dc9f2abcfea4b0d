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


def test_the_slimkl_data_says_where_it_comes_from_and_where_it_goes():
    """The configs and bench read ../shared/data/slimkl, which a clone lacks: the READMEs name
    the splits' source, the folder (from the working directory) and how to point elsewhere."""
    sources = [
        line.split(":", 1)[1].strip()
        for path in ROOT.joinpath("configs").glob("slimkl-*.yaml")
        for line in path.read_text().splitlines()
        if line.strip().startswith("source:")
    ]
    assert sources and all(s.startswith("../shared/data/slimkl/") for s in sources)
    for readme in ("README.md", "benchmarks/README.md"):
        text = " ".join(ROOT.joinpath(readme).read_text().split())
        assert "github.com/richardcsuwandi/slim-kl" in text and "folder `data/`" in text
        assert "relative to the working directory" in text and "DISTGP_DATA" in text
