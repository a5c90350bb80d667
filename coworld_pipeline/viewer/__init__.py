"""`coworld serve`: a small local web app that puts replays and live games one click away.

    /                  leagues and recent episodes, with links
    /replay/<episode>  start the game's replay mode (or its static viewer bundle) on demand and redirect
                       to its viewer; the replay server stops once nobody has used it for a while
    /live/<episode>    redirect to the live global viewer of an episode being played

No Dagster and no CLI here: `coworld_cli/serve_cli.py` parses options, the Dagster episode metadata
links to these routes (`defs/league/links.py`).
"""
