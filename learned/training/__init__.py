"""Training apart from what it trains: recipes and presets, losses, checkpoints.

The loop itself is the command :mod:`learned.train`; :mod:`.recipes` holds the papers' recipes,
presets and configurations, :mod:`.losses` the training losses and :mod:`.checkpoints` saving and
loading (toolkit checkpoints and the authors' released weights).
"""
