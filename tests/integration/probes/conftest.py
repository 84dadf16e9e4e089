"""Real servers for the probe tests (see tests/fixtures/servers.py)."""

from tests.fixtures.servers import *  # noqa: F403
