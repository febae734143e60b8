"""The repository's promises about itself: generated docs are current, README and CI agree."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from aivet.cli.main import app

ROOT = Path(__file__).resolve().parent.parent


def test_rules_doc_is_generated_from_the_catalogue() -> None:
    result = CliRunner().invoke(app, ["rules", "--format", "markdown"])
    assert result.exit_code == 0
    assert (ROOT / "docs" / "rules.md").read_text() == result.stdout, (
        "docs/rules.md is stale: run `aivet rules --format markdown > docs/rules.md`")


def test_readme_opens_with_the_two_setup_commands_and_ci_runs_the_same_tests() -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", readme, re.S)
    assert block is not None
    commands = [line for line in block.group(1).splitlines() if line.strip()]
    assert len(commands) == 2
    assert "aivet scan --example" in commands[0]
    assert commands[1] == "bash scripts/test"
    assert readme.index("```bash") < readme.index("---")  # the first section
    assert "bash scripts/test" in (ROOT / ".ci" / "run").read_text()


def test_documented_links_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    for target in re.findall(r"\]\(((?:docs|bench)/[^)#]+)\)", readme):
        assert (ROOT / target).exists(), target
