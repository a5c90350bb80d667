"""What league episodes teach under Dagster: bundles, reports, stats, grades, advice, plans, league stats.

core.py        Dagster-free: role runs for league episodes, the knowledge store, the stats dataset
partitions.py  `league_policies` (one key per league and policy version)
resources.py   `KnowledgeResource` (role timeout, episodes looked at per policy)
assets.py      the assets and their UI metadata
sensors.py     the `knowledge` sensor and the jobs it requests
"""
