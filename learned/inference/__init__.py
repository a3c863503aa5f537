"""Inference plumbing shared by the networks and the commands.

:mod:`.tiling` (tiled inference within a memory budget), :mod:`.precision` (autocast and the
layers kept in float32), :mod:`._padding` (input checks, padding to a multiple and cropping back)
and :mod:`._speed` (CPU fast paths of a few layers).
"""
