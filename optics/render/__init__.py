"""Rendering defocus: the layered, occlusion-aware renderer (:mod:`.layered`), its calibrated-field
variant (:mod:`.field`), synthetic datasets (:mod:`.synthesize`) and raw Pixel 4 DP renders
(:mod:`.pixel4_raw`).

Commands: ``python -m optics.render.synthesize`` and ``python -m optics.render.pixel4_raw``.
"""

from .layered import DefocusRendering, render_coc_layers, render_defocus
