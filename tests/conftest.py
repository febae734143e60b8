from __future__ import annotations

import pytest
from hypothesis import settings

# Performance is measured in bench/, never asserted by wall-clock in tests. Hypothesis' default
# 200 ms per-example deadline is such an assertion (it fails on a loaded machine), so it is off
# for every property test; a parser that hangs is caught by pytest-timeout instead.
settings.register_profile("aivet", deadline=None)
settings.load_profile("aivet")


@pytest.fixture
def marker_dir(tmp_path_factory: pytest.TempPathFactory):
    """A directory where a payload would leave a marker file if it ever ran."""
    return tmp_path_factory.mktemp("markers")
