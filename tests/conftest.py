"""Index of the fixture modules; the fixtures themselves live in tests/fixtures/."""

pytest_plugins = [
    "tests.fixtures.tools",
    "tests.fixtures.postgres",
]
