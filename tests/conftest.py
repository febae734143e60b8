from __future__ import annotations

import pytest


@pytest.fixture
def marker_dir(tmp_path_factory: pytest.TempPathFactory):
    """A directory where a payload would leave a marker file if it ever ran."""
    return tmp_path_factory.mktemp("markers")
