"""Bundled Orchard players. Each module exposes ``choose_action(observation) -> str`` and a ``main()``
that plays over the websocket given in ``COWORLD_PLAYER_WS_URL``."""
