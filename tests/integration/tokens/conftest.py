"""Token tests use env_factory (tests/conftest.py, tests/helpers/env.py)."""
