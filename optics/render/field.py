r"""Layered dual-pixel rendering with a field-varying PSF pair (:class:`optics.DualPixelField`).

Used by :func:`optics.render_coc_layers` for ``model='calibrated'``. The image is cut into
square tiles; a source pixel of layer :math:`i` in tile :math:`t` is blurred by the pair
:math:`K_{v,i,t}` of the layer's CoC at the tile's centre (a scatter model: a scene point's blur
depends on where it is imaged), so that each layer's blurred colour and alpha are

.. math:: C_{v,i} = \sum_t K_{v,i,t} * (M_t A_i I), \qquad a_{v,i} = \sum_t K_{v,i,t} * (M_t A_i)

(:math:`M_t` the tile's indicator) and are composited exactly as for the symmetric models. For
a constant depth and a single tile, :math:`B_v = I * K_v`; with tiles, a view equals the image
convolved with the local pair wherever the pixels within one kernel radius belong to one tile.
Pixels of the border extension belong to the nearest tile.
"""

from __future__ import annotations

import math

import numpy as np

from ._fft_layers import _axis_window, _irfft2_rows, _rfft2
from ..dual_pixel.calibrated import calibrated_dual_pixel_psfs, calibrated_half_size
from ..dual_pixel.fit import DualPixelField

__all__ = ["tile_bounds", "FieldKernels", "field_kernels", "blur_layers_field"]


def tile_bounds(n: int, tile: int) -> list[tuple[int, int]]:
    """Tiles ``[a, b)`` of ``range(n)`` of side ``tile`` (the last ones share the remainder evenly)."""
    count = max(1, math.ceil(n / tile))
    edges = np.linspace(0, n, count + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


class FieldKernels:
    """Left/right kernels per (layer, tile), made when first asked for.

    ``max_half`` is the largest kernel half side over every (layer, tile), from the parameters
    alone (:func:`optics.dual_pixel.calibrated.calibrated_half_size`).
    """

    def __init__(self, field: DualPixelField, layer_radii, shape, tile: int, origin, dtype):
        H, W = shape
        self.rows, self.cols = tile_bounds(H, tile), tile_bounds(W, tile)
        self.radii = [float(c) for c in layer_radii]
        self.dtype = dtype
        self.field = field
        self._params = {}
        for ty, (y0, y1) in enumerate(self.rows):
            for tx, (x0, x1) in enumerate(self.cols):
                r, p = field.params_at(origin[0] + (x0 + x1 - 1) / 2, origin[1] + (y0 + y1 - 1) / 2)
                self._params[(ty, tx)] = (r, p)
        self.max_half = max(
            calibrated_half_size(c * r / field.centre_radius, p) for c in self.radii for r, p in self._params.values()
        )
        self._cache: dict = {}

    def __getitem__(self, key):
        if key not in self._cache:
            i, ty, tx = key
            r, p = self._params[(ty, tx)]
            k = calibrated_dual_pixel_psfs(self.radii[i] * r / self.field.centre_radius, p, dtype=self.dtype)
            self._cache[key] = (k.left, k.right)
        return self._cache[key]


def field_kernels(field: DualPixelField, layer_radii, shape, tile: int, origin, dtype) -> FieldKernels:
    """The (lazy) kernels of every (layer, tile) for :func:`blur_layers_field`."""
    return FieldKernels(field, layer_radii, shape, tile, origin, dtype)


def _padded_extent(a: int, b: int, first: bool, last: bool, pad: int, n: int) -> tuple[int, int]:
    return (0 if first else a + pad), (n + 2 * pad if last else b + pad)


def blur_layers_field(img_cf, idx_p, boxes, kernels, pad, shape, occlusion, workers):
    """Blur every layer tile by tile and composite (occlusion) or sum the layers, per view.

    Returns the views (C, H, W) and the final transmittances (H, W) (ones for the naive sum).
    """
    H, W = shape
    C = img_cf.shape[0]
    dt = img_cf.dtype
    one = dt.type(1)
    names = ("left", "right")
    rows, cols = kernels.rows, kernels.cols
    views = {v: np.zeros((C, H, W), dtype=dt) for v in names}
    transmit = {v: np.ones((H, W), dtype=dt) for v in names}
    for i, box in enumerate(boxes):
        if box is None:
            continue
        layer = {v: np.zeros((C + 1, H, W), dtype=dt) for v in names}  # blurred colour and alpha
        touched = False
        for ty, (y0, y1) in enumerate(rows):
            py0, py1 = _padded_extent(y0, y1, ty == 0, ty == len(rows) - 1, pad, H)
            by0, by1 = max(box[0].start, py0), min(box[0].stop, py1)
            if by0 >= by1:
                continue
            for tx, (x0, x1) in enumerate(cols):
                px0, px1 = _padded_extent(x0, x1, tx == 0, tx == len(cols) - 1, pad, W)
                bx0, bx1 = max(box[1].start, px0), min(box[1].stop, px1)
                if bx0 >= bx1:
                    continue
                k_left, k_right = kernels[(i, ty, tx)]
                n = k_left.shape[0]
                h = n // 2
                rw = _axis_window(by0, by1, h, pad, H)
                cw = _axis_window(bx0, bx1, h, pad, W)
                if rw is None or cw is None:
                    continue
                (r0, r1, wr, sr), (c0, c1, wc, sc) = rw[:4], cw[:4]
                mask = idx_p[r0:r1, c0:c1] == i
                if not mask.any():
                    continue
                touched = True
                grid = (rw[4], cw[4])
                planes = np.zeros((C + 1, *grid), dtype=dt)
                np.multiply(img_cf[:, r0:r1, c0:c1], mask, out=planes[:C, : r1 - r0, : c1 - c0])
                planes[C, : r1 - r0, : c1 - c0] = mask
                spec = _rfft2(planes, grid, workers)
                product = np.empty_like(spec)
                for name, k in (("left", k_left), ("right", k_right)):
                    np.multiply(spec, _rfft2(k, grid, workers), out=product)
                    layer[name][:, wr, wc] += _irfft2_rows(product, grid, sr, workers)[:, :, sc]
        if not touched:
            continue
        for name in names:
            colour, alpha = layer[name][:C], layer[name][C]
            if occlusion:
                t = transmit[name]
                colour *= t
                views[name] += colour  # B_v += C_v,i prod_{j<i} (1 - a_v,j)
                np.subtract(one, alpha, out=alpha)
                t *= alpha
            else:
                views[name] += colour  # K3DN Eq. 5
    return views, transmit
