"""Fuzzing the device codecs and the REST API (issue 8).

`python -m fuzz.run` throws random and mutated frames at every codec entry
point (`fuzz.targets`); `python -m fuzz.api` runs schemathesis against the
controller's OpenAPI schema. `make fuzz` runs both at full volume and
rewrites the figures in docs/reliability.md; tests/test_fuzz.py is the short
version CI runs.
"""
