"""``python -m aivet``: the same as the ``aivet`` command."""

from aivet.cli import run

run()
