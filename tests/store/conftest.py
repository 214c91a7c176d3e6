"""The store tests use the shared Redis fixtures of tests/conftest.py (redis_url, redis_prefix)."""
