"""The league under Dagster: episode/round/standings assets, the round schedule and the commissioner sensor."""
