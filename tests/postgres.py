"""A real PostgreSQL for tests: a cluster of the test's own (center.local), initdb'd in a
temporary directory and started on a free loopback port, never the machine's own server.

tests/conftest.py registers this module as a pytest plugin: `postgres` is a started cluster
(its `.dsn`, `.stop()`, `.start()`), removed at teardown."""

from __future__ import annotations

import pytest

from center.local import LocalPostgres, server_bin


@pytest.fixture
def postgres():
    try:
        server_bin()
    except RuntimeError as e:
        pytest.fail(str(e))
    cluster = LocalPostgres(fsync=False)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.remove()
