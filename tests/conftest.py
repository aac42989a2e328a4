"""Shared pytest configuration. Fixtures live in tests/support/ and are loaded as plugins here."""

pytest_plugins = ["tests.support.db", "tests.support.servers", "tests.support.capture"]
