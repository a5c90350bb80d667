"""Orchard: an example Coworld game (simultaneous-move fruit harvesting on a grid)."""

from orchard.engine import GAME_NAME, GAME_VERSION

__all__ = ["GAME_NAME", "GAME_VERSION"]
__version__ = GAME_VERSION
