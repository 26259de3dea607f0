"""Load benchmarks against the named limits of DESIGN §9, printed as ratios (never timed tests).

`python -m bench` starts its own embedded PostgreSQL, the service and PostgREST on loopback,
runs every benchmark (under a minute in all) and cleans up; `python -m bench postgrest` runs one.
"""
