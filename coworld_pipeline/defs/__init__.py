"""Dagster definitions, one folder per domain (loaded by `coworld_pipeline/definitions.py`).

Everything here is thin: assets, checks, schedules and sensors call `coworld_pipeline.league`
(the league database and commissioner) and `coworld_pipeline.runtime` (episodes, artifacts).
"""
