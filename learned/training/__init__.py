"""Training apart from its loop: recipes, the step and its losses, data order, optimisation, checkpoints.

The loop itself and its command line are :mod:`learned.train`. Here, one concern a module:

- :mod:`.recipes`: the papers' recipes, the presets and the typed configurations;
- :mod:`.step`: the forward pass of one training step and its loss terms (one module for DDP);
- :mod:`.losses`: the training losses of the families;
- :mod:`.sampling`: the dataset of a recipe, the seeded batch sampler (batch ``s`` a pure function
  of ``(seed, s)``) and the global RNG state;
- :mod:`.optim`: the optimiser and the LR scheduler, and the schedule of a resumed run;
- :mod:`.distributed`: the DDP context of a ``torchrun`` launch and the device;
- :mod:`.run_log`: ``log.csv`` (one row per step) and the loss curve ``loss.png``;
- :mod:`.checkpoints`: saving and loading (toolkit checkpoints, the authors' released weights,
  and the training checkpoint a run resumes from);
- :mod:`.held_out`: the held-out PSNR of ``eval.json``;
- :mod:`.real_views`: the self-supervised term on real dual-pixel views (:mod:`.reblur`, its forward model).

Each group of ``learned.train``'s flags is added by the module of its concern: the recipe's
(:func:`.recipes.add_recipe_arguments`), the checkpoints' and ``--resume``
(:func:`.checkpoints.add_checkpoint_arguments`) and the real views' (:func:`.real_views.add_real_view_arguments`).
"""
