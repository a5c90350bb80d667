"""The league under Dagster: episode/round/standings assets, the round schedule, the commissioner sensor."""
