r"""Self-supervised dual-pixel reblur loss: the layered DP forward model in torch.

Given a sharp estimate :math:`x` (B, C, H, W) and a signed defocus map :math:`d` (B, 1, H, W),
:func:`dp_reblur` renders the two dual-pixel views exactly as the layered renderer of
:mod:`optics.render.layered` / :mod:`optics.render.field` does, and :func:`reblur_loss` compares
them with the observed views (Charbonnier or L1, optional mask and border). Everything is a torch
graph: differentiable in :math:`x`, and in :math:`d` through the layer weights.

Model (per view :math:`v \in \{L, R\}`, layers :math:`i` ordered by ascending level = near to
far, cells :math:`c` of the frame with partition-of-unity weights :math:`M_c`):

.. math:: A_i = w_i(d), \quad C_{v,i} = \sum_c K_{v,i,c} * (M_c A_i x), \quad
          a_{v,i} = \sum_c K_{v,i,c} * (M_c A_i),

.. math:: B_v = \sum_i C_{v,i} \prod_{j<i} (1 - a_{v,j}) \;\text{(occlusion)}, \qquad
          B_v = \sum_i C_{v,i} \;\text{(naive, K3DN Eq. 5)}.

* Layer weights :math:`w_i(d)`: ``interpolation='linear'`` (default) gives tent weights between
  the two nearest levels (``np.interp`` of the level index, clamped at the ends): piecewise
  linear in :math:`d`, one-hot where :math:`d` sits on a level, so a map on the levels renders the
  renderer's binary layer masks. ``'nearest'``: one-hot of the nearest level (ties to the lower
  level; not differentiable in :math:`d`).
* Boundary: image and layer weights are extended by the same ``numpy.pad`` mode
  (:data:`optics.operators.convolution.BOUNDARIES`); cells own the extension by position
  (nearest cell), as in :mod:`optics.render.field`.
* Convolution ``y[p] = sum_t k[h + t] x[p - t]`` (kernel centre at index ``h``), linear (no wrap):
  per layer, the weighted input of every cell is cut to a window, transformed with ``torch.fft``
  on a grid long enough for the full linear convolution, and the windows are overlap-added
  (``F.fold``). Cells whose window has no weight in a layer are skipped (as are empty layers).

PSF sources (:class:`ReblurPSFs`):

* :meth:`ReblurPSFs.from_model`: the symmetric models of :func:`optics.dual_pixel_psfs`, levels
  in CoC radius (pixels); ``K_R`` is ``K_L`` mirrored, as the renderer.
* :meth:`ReblurPSFs.from_field`: a fitted :class:`optics.DualPixelField` on square tiles of the
  image (hard tiles), the kernels of :mod:`optics.render.field` (levels: CoC radius at the centre).
* **Soft maps and occlusion.** With ``occlusion=True`` a pixel whose map lies between two levels is
  split into two partial layers that are composited front to back as if one hid the other, which
  loses light (up to a quarter where the weights are 1/2 each; measured on a real Pixel 4 crop with
  the physics' continuous map: the reblurred views 10 % darker). The renderer's occlusion model is
  defined for maps on the levels; for continuous maps use ``occlusion=False`` (the layers summed,
  light preserved) or ``interpolation='nearest'``.
* :meth:`ReblurPSFs.from_grid`: the :class:`optics.dual_pixel.deblur.DualPixelPSFGrid` of the
  physics deblur (levels: its ``scales``), each pair rescaled by
  :func:`~optics.dual_pixel.deblur.rescale_blur_kernel` and (default) recentred on the pair's
  reference point (the grid's ``reference``: the centroid of :math:`w K_L + (1 - w) K_R`, 0.5 the
  full-aperture image, 0.9 for Xin et al.'s Pixel 4 sources), as
  :func:`optics.dual_pixel.deblur.dual_pixel_deblur` does, so that its
  image and defocus map reblur to the views. Cells are blended with the deblur's bilinear tents
  (``blend='bilinear'``, normalised to sum 1; a scatter model: a source pixel's blur is the tent
  mix of its cells' kernels) or owned by one cell (``'nearest'``). The deblur recentres with a
  Fourier phase ramp; here the shift is a bilinear resampling of the kernel (compact, positive).

Differences from the NumPy renderer: none in the model; the views agree to FFT rounding
(tests: float32 within 2e-6 absolute on [0, 1] images, float64 within 1e-12). The renderer takes
a CoC map and quantises it (``rint(c / coc_step)``, half to even); here the map is
interpolated between ``levels``, so a renderer's map equals this one's where it lies on a level.

Gradients in :math:`d`: zero where :math:`d` lies outside ``[levels[0], levels[-1]]`` (clamped);
exactly on a level the derivative is the one-sided one from above (below for the last level).
Half-precision inputs (e.g. under ``torch.autocast``) are computed in float32 (``torch.fft`` has no
bfloat16); float64 stays float64.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence, Tuple

import numpy as np
import scipy.fft
import scipy.ndimage
import torch
import torch.nn as nn
import torch.nn.functional as F

from optics.operators.convolution import BOUNDARIES

__all__ = ["ReblurPSFs", "layer_weights", "dp_reblur", "reblur_loss", "DPReblur", "DPReblurLoss", "PENALTIES"]

#: Robust distances of :func:`reblur_loss`.
PENALTIES = ("charbonnier", "l1")
_INTERPOLATIONS = ("linear", "nearest")
_BLENDS = ("nearest", "bilinear")


# --------------------------------------------------------------------------------------------------
# PSF sources
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class ReblurPSFs:
    """Left/right kernels per (level, cell), the PSF source of :func:`dp_reblur`.

    Attributes
    ----------
    levels : (T,) float64 array, strictly increasing
        The defocus value of each layer (CoC radius in pixels, or a deblur scale); ascending is
        near to far (the compositing order).
    left, right : tuple of T float64 arrays (R, Q, n_i, n_i), n_i odd
        Kernels of layer i in each of the R x Q cells (centre at index n_i // 2).
    row_edges, col_edges : (R + 1,), (Q + 1,) int arrays, or None
        Cell bounds in frame pixels; None (with R = Q = 1): one cell, any image size.
    blend : {'nearest', 'bilinear'}
        Cell ownership of a pixel: its cell, or the deblur's bilinear tents (normalised).
    name : str
    """

    levels: np.ndarray
    left: tuple
    right: tuple
    row_edges: Optional[np.ndarray] = None
    col_edges: Optional[np.ndarray] = None
    blend: str = "nearest"
    name: str = ""

    def __post_init__(self):
        lev = np.asarray(self.levels, dtype=np.float64)
        if lev.ndim != 1 or lev.size < 1 or not np.all(np.isfinite(lev)) or np.any(np.diff(lev) <= 0):
            raise ValueError(f"levels must be a non-empty, finite, strictly increasing 1-D sequence; got {self.levels!r}")
        if len(self.left) != lev.size or len(self.right) != lev.size:
            raise ValueError(f"left and right must hold one kernel array per level ({lev.size}); "
                             f"got {len(self.left)} and {len(self.right)}")
        if (self.row_edges is None) != (self.col_edges is None):
            raise ValueError("row_edges and col_edges must both be given or both be None")
        if self.blend not in _BLENDS:
            raise ValueError(f"blend must be one of {_BLENDS}; got {self.blend!r}")
        cells = (1, 1)
        edges = []
        for name in ("row_edges", "col_edges"):
            e = getattr(self, name)
            if e is not None:
                e = np.asarray(e, dtype=np.int64)
                if e.ndim != 1 or e.size < 2 or np.any(np.diff(e) <= 0) or e[0] != 0:
                    raise ValueError(f"{name} must be increasing integers from 0; got {getattr(self, name)!r}")
            edges.append(e)
        if edges[0] is not None:
            cells = (edges[0].size - 1, edges[1].size - 1)
        left, right = [], []
        for i, (kl, kr) in enumerate(zip(self.left, self.right)):
            kl, kr = np.asarray(kl, dtype=np.float64), np.asarray(kr, dtype=np.float64)
            if kl.shape != kr.shape or kl.ndim != 4 or kl.shape[:2] != cells or kl.shape[2] != kl.shape[3] or kl.shape[2] % 2 != 1:
                raise ValueError(f"kernels of level {i} must be two ({cells[0]}, {cells[1]}, n, n) arrays, n odd; "
                                 f"got {kl.shape} and {kr.shape}")
            if not (np.all(np.isfinite(kl)) and np.all(np.isfinite(kr))):
                raise ValueError(f"kernels of level {i} must be finite")
            left.append(kl)
            right.append(kr)
        object.__setattr__(self, "levels", lev)
        object.__setattr__(self, "left", tuple(left))
        object.__setattr__(self, "right", tuple(right))
        object.__setattr__(self, "row_edges", edges[0])
        object.__setattr__(self, "col_edges", edges[1])

    @property
    def frame(self) -> Optional[Tuple[int, int]]:
        """(H, W) covered by the cells, or None for one cell over any image."""
        if self.row_edges is None:
            return None
        return int(self.row_edges[-1]), int(self.col_edges[-1])

    @property
    def max_half(self) -> int:
        return max(k.shape[2] // 2 for k in self.left)

    # constructors ------------------------------------------------------------------------------
    @classmethod
    def from_model(cls, levels: Sequence[float], model: str = "half_disc",
                   psf_options: Optional[Mapping[str, Any]] = None) -> "ReblurPSFs":
        """The renderer's symmetric models (:func:`optics.dual_pixel_psfs`) at CoC radii ``levels`` (pixels)."""
        from optics.dual_pixel.models import DP_MODELS, dual_pixel_psfs

        if model not in DP_MODELS:
            raise ValueError(f"model must be one of {DP_MODELS}; got {model!r}")
        lev = np.asarray(levels, dtype=np.float64)
        left = [dual_pixel_psfs(float(r), model, **dict(psf_options or {})).left for r in lev]
        return cls(lev, tuple(k[None, None] for k in left), tuple(k[None, None, :, ::-1] for k in left),
                   name=f"{model} at CoC radii {lev.tolist()}")

    @classmethod
    def from_field(cls, field: Any, levels: Sequence[float], shape: Tuple[int, int], tile: int = 128,
                   origin: Tuple[float, float] = (0.0, 0.0)) -> "ReblurPSFs":
        """A fitted :class:`optics.DualPixelField` on the tiles of :func:`optics.render_coc_layers` (``model='calibrated'``).

        ``shape`` (H, W) is the image's, ``origin`` (x, y) its top-left in the field's frame and
        ``levels`` the CoC radii (at the field's centre), as the renderer's arguments.
        """
        from optics.dual_pixel.fit import DualPixelField
        from optics.render.field import field_kernels

        if not isinstance(field, DualPixelField):
            raise TypeError(f"field must be an optics.DualPixelField; got {type(field).__name__}")
        if isinstance(tile, bool) or not isinstance(tile, numbers.Integral) or tile < 8:
            raise ValueError(f"tile must be an integer >= 8 (pixels); got {tile!r}")
        H, W = (int(s) for s in shape)
        lev = np.asarray(levels, dtype=np.float64)
        fk = field_kernels(field, lev, (H, W), int(tile), (float(origin[0]), float(origin[1])), np.float64)
        R, Q = len(fk.rows), len(fk.cols)
        left, right = [], []
        for i in range(lev.size):
            pairs = [[fk[(i, ty, tx)] for tx in range(Q)] for ty in range(R)]
            h = max(p[0].shape[0] // 2 for row in pairs for p in row)
            kl = np.zeros((R, Q, 2 * h + 1, 2 * h + 1))
            kr = np.zeros_like(kl)
            for ty in range(R):
                for tx in range(Q):
                    a, b = pairs[ty][tx]
                    o = h - a.shape[0] // 2
                    kl[ty, tx, o:o + a.shape[0], o:o + a.shape[0]] = a
                    kr[ty, tx, o:o + b.shape[0], o:o + b.shape[0]] = b
            left.append(kl)
            right.append(kr)
        rows = np.array([a for a, _ in fk.rows] + [H])
        cols = np.array([a for a, _ in fk.cols] + [W])
        return cls(lev, tuple(left), tuple(right), rows, cols, "nearest",
                   name=f"DualPixelField (degree {field.degree}) on {tile} px tiles of {H}x{W} at {tuple(origin)}")

    @classmethod
    def from_grid(cls, psfs: Any, scales: Optional[Sequence[float]] = None, *, recentre: bool = True,
                  blend: str = "bilinear") -> "ReblurPSFs":
        """The physics deblur's PSF source (:class:`optics.dual_pixel.deblur.DualPixelPSFGrid`) at ``scales``.

        ``scales`` default: the grid's (:data:`optics.dual_pixel.deblur.DEFAULT_SCALES`, -0.875 to 1.625, 21 levels with 0).
        ``recentre``: shift each pair so that its reference point (:meth:`DualPixelPSFGrid.pair`, the
        grid's ``reference``) is at the centre (as the deblur), by bilinear resampling.
        """
        from optics.dual_pixel.deblur import DEFAULT_SCALES, DualPixelPSFGrid

        if not isinstance(psfs, DualPixelPSFGrid):
            raise TypeError(f"psfs must be an optics DualPixelPSFGrid; got {type(psfs).__name__}")
        own = psfs.scales if psfs.scales is not None else DEFAULT_SCALES  # the source's, with 0 (issue 32)
        s = np.asarray(own if scales is None else scales, dtype=np.float64)
        if s.ndim != 1 or s.size < 1 or not np.all(np.isfinite(s)) or np.any(np.diff(s) <= 0):
            raise ValueError(f"scales must be finite and strictly increasing; got {scales!r}")
        R, Q = psfs.grid
        pairs = [[[psfs.pair(r, q, float(sc)) for q in range(Q)] for r in range(R)] for sc in s]
        m = 0
        if recentre:
            m = int(math.ceil(max(max(abs(p[2][0]), abs(p[2][1])) for lay in pairs for row in lay for p in row))) + 1
        left, right = [], []
        for lay in pairs:
            n = lay[0][0][0].shape[0] + 2 * m
            kl, kr = np.zeros((R, Q, n, n)), np.zeros((R, Q, n, n))
            for r in range(R):
                for q in range(Q):
                    a, b, (dy, dx) = lay[r][q]
                    for out, k in ((kl, a), (kr, b)):
                        k = np.pad(k, m)
                        if recentre:
                            k = scipy.ndimage.shift(k, (-dy, -dx), order=1, mode="constant", cval=0.0)
                        out[r, q] = k
            left.append(kl)
            right.append(kr)
        c = psfs.cell
        return cls(s, tuple(left), tuple(right), np.arange(R + 1) * c, np.arange(Q + 1) * c, blend,
                   name=f"{psfs.name or 'DualPixelPSFGrid'} at {s.size} scales{' (recentred)' if recentre else ''}")


# --------------------------------------------------------------------------------------------------
# plan: windows, cell weights and transfer functions of one image geometry
# --------------------------------------------------------------------------------------------------
def _axis_cells(edges, blend, n_img, offset, h):
    """Cell weights along one axis on the layer's input grid q in [0, n_img + 2h) (image pixel q - h).

    Returns (kept cell indices, stride, s0, Lw, patch weights (k, Lw)): patch j covers
    q in [s0 + j * stride, s0 + j * stride + Lw).
    """
    N = n_img + 2 * h
    q = np.arange(N)
    if edges is None:
        return np.array([0]), 1, 0, N, np.ones((1, N))
    y = np.clip(q - h, 0, n_img - 1) + offset  # the extension belongs to the nearest cell
    R = edges.size - 1
    if blend == "nearest":
        idx = np.clip(np.searchsorted(edges, y, side="right") - 1, 0, R - 1)
        w = (idx[None, :] == np.arange(R)[:, None]).astype(np.float64)
    else:
        y = np.clip(y, edges[0], edges[-1] - 1)
        centre = (edges[:-1] + edges[1:] - 1) / 2.0
        side = np.diff(edges).astype(np.float64)
        w = np.maximum(0.0, 1.0 - np.abs(y[None, :] - centre[:, None]) / side[:, None])
        w /= w.sum(0, keepdims=True)
    kept = np.flatnonzero(w.any(1))
    w = w[kept]
    stride = max(1, int(round((edges[kept[-1] + 1] - edges[kept[0]]) / kept.size)))
    lo = np.array([np.flatnonzero(r)[0] for r in w]) - np.arange(kept.size) * stride
    hi = np.array([np.flatnonzero(r)[-1] + 1 for r in w]) - np.arange(kept.size) * stride
    s0, Lw = int(lo.min()), int(hi.max() - lo.min())
    patches = np.zeros((kept.size, Lw))
    for j in range(kept.size):
        a = s0 + j * stride
        src = slice(max(a, 0), min(a + Lw, N))
        patches[j, src.start - a:src.stop - a] = w[j, src]
    return kept, stride, s0, Lw, patches


class _Layer:
    """One layer's windows and transfer functions (torch, on the plan's device and dtype)."""

    def __init__(self, psfs: ReblurPSFs, i: int, shape, offset, device, dtype):
        H, W = shape
        kl, kr = psfs.left[i], psfs.right[i]
        self.h = h = kl.shape[2] // 2
        ax = []
        for n_img, edges, off in ((H, psfs.row_edges, offset[0]), (W, psfs.col_edges, offset[1])):
            ax.append(_axis_cells(edges, psfs.blend, n_img, off, h))
        (ky, self.sy, self.s0y, self.Ly, wy), (kx, self.sx, self.s0x, self.Lx, wx) = ax
        self.R, self.Q = ky.size, kx.size
        self.N = (H + 2 * h, W + 2 * h)
        self.weights = (torch.as_tensor(wy, dtype=dtype, device=device)[:, None, :, None]
                        * torch.as_tensor(wx, dtype=dtype, device=device)[None, :, None, :])  # (R, Q, Ly, Lx)
        self.K = (self.Ly + 2 * h, self.Lx + 2 * h)  # full linear convolution of a patch
        self.grid = (scipy.fft.next_fast_len(self.K[0], real=True), scipy.fft.next_fast_len(self.K[1], real=True))
        self.otfs = []
        n = 2 * h + 1
        for k in (kl, kr):
            k = k[np.ix_(ky, kx)].reshape(self.R * self.Q, n, n)
            placed = torch.zeros((k.shape[0], *self.grid), dtype=dtype, device=device)
            placed[:, :n, :n] = torch.as_tensor(k, dtype=dtype, device=device)
            self.otfs.append(torch.fft.rfft2(placed))


class _Plan:
    """Padding indices and lazily built layers of one (shape, offset, boundary, device, dtype)."""

    def __init__(self, psfs: ReblurPSFs, shape, offset, boundary, device, dtype):
        H, W = shape
        self.psfs, self.shape, self.offset, self.device, self.dtype = psfs, shape, offset, device, dtype
        self.pad = P = psfs.max_half
        mode = BOUNDARIES[boundary]
        self.index, self.valid = [], None
        for n in (H, W):
            if mode == "constant":
                idx = np.pad(np.arange(n), P, mode="edge")
            else:
                idx = np.pad(np.arange(n), P, mode=mode)
            self.index.append(torch.as_tensor(idx, device=device))
        if mode == "constant" and P > 0:
            v = np.zeros((H + 2 * P, W + 2 * P))
            v[P:P + H, P:P + W] = 1
            self.valid = torch.as_tensor(v, dtype=dtype, device=device)
        self._layers: dict = {}

    def extend(self, t: torch.Tensor) -> torch.Tensor:
        out = t.index_select(-2, self.index[0]).index_select(-1, self.index[1])
        return out * self.valid if self.valid is not None else out

    def layer(self, i: int) -> _Layer:
        if i not in self._layers:
            self._layers[i] = _Layer(self.psfs, i, self.shape, self.offset, self.device, self.dtype)
        return self._layers[i]


# --------------------------------------------------------------------------------------------------
# checks
# --------------------------------------------------------------------------------------------------
def _work_dtype(t: torch.Tensor) -> torch.dtype:
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def _check_tensor(t: Any, name: str, channels: Optional[int] = None) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(t).__name__}")
    if not t.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor; got {t.dtype}")
    if t.ndim != 4 or (channels is not None and t.shape[1] != channels) or min(t.shape) < 1:
        want = "(B, C, H, W)" if channels is None else f"(B, {channels}, H, W)"
        raise ValueError(f"{name} must be a non-empty {want} tensor; got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must contain only finite values")


def _check_psfs(psfs: Any) -> ReblurPSFs:
    from optics.dual_pixel.deblur import DualPixelPSFGrid

    if isinstance(psfs, DualPixelPSFGrid):
        return ReblurPSFs.from_grid(psfs)
    if not isinstance(psfs, ReblurPSFs):
        raise TypeError(f"psfs must be a ReblurPSFs or an optics DualPixelPSFGrid; got {type(psfs).__name__}")
    return psfs


def _check_offset(offset: Any, shape, psfs: ReblurPSFs) -> Tuple[int, int]:
    try:
        o = tuple(offset)
        ok = len(o) == 2 and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 0 for v in o)
    except TypeError:
        ok = False
    if not ok:
        raise ValueError(f"offset must be a pair of integers >= 0 (row, col); got {offset!r}")
    frame = psfs.frame
    if frame is not None and (o[0] + shape[0] > frame[0] or o[1] + shape[1] > frame[1]):
        raise ValueError(f"offset {o} with an image of {shape[0]}x{shape[1]} leaves the psfs' "
                         f"{frame[0]}x{frame[1]} frame")
    return int(o[0]), int(o[1])


def _check_options(occlusion: Any, boundary: Any, interpolation: Any) -> None:
    if not isinstance(occlusion, (bool, np.bool_)):
        raise ValueError(f"occlusion must be a bool; got {occlusion!r}")
    if boundary not in BOUNDARIES:
        raise ValueError(f"boundary must be one of {sorted(BOUNDARIES)}; got {boundary!r}")
    if interpolation not in _INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {_INTERPOLATIONS}; got {interpolation!r}")


# --------------------------------------------------------------------------------------------------
# forward model
# --------------------------------------------------------------------------------------------------
def layer_weights(defocus: torch.Tensor, levels: Sequence[float], interpolation: str = "linear") -> torch.Tensor:
    """Layer weights (B, T, H, W) of a defocus map (B, 1, H, W) at ``levels`` (module Notes).

    ``'linear'``: tent weights of the two nearest levels (sum 1, clamped at the ends);
    ``'nearest'``: one-hot of the nearest level (ties to the lower one).
    """
    if interpolation not in _INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {_INTERPOLATIONS}; got {interpolation!r}")
    lev = torch.as_tensor(np.asarray(levels, dtype=np.float64), dtype=defocus.dtype, device=defocus.device)
    T = lev.numel()
    if T == 1:
        return torch.ones_like(defocus)
    d = defocus[:, 0].clamp(float(lev[0]), float(lev[-1]))
    j = (torch.searchsorted(lev, d.detach().contiguous(), right=True) - 1).clamp(0, T - 2)
    if interpolation == "nearest":
        j = torch.where((d - lev[j]) > (lev[j + 1] - d), j + 1, j)
        return F.one_hot(j, T).permute(0, 3, 1, 2).to(defocus.dtype)
    frac = (d - lev[j]) / (lev[j + 1] - lev[j])
    w = F.one_hot(j, T) * (1 - frac)[..., None] + F.one_hot(j + 1, T) * frac[..., None]
    return w.permute(0, 3, 1, 2)


def _support(defocus: torch.Tensor, levels: np.ndarray, weights: torch.Tensor, interpolation: str) -> torch.Tensor:
    """Where a layer has weight or (linear, map with gradient) a nonzero derivative: (B, T, H, W) 0/1."""
    if interpolation == "nearest" or not defocus.requires_grad or levels.size == 1:
        return (weights.detach() > 0).to(weights.dtype)
    lev = torch.as_tensor(levels, dtype=defocus.dtype, device=defocus.device)
    d = defocus.detach()[:, 0].clamp(float(lev[0]), float(lev[-1])).contiguous()
    j = (torch.searchsorted(lev, d, right=True) - 1).clamp(0, levels.size - 2)
    s = F.one_hot(j, levels.size) + F.one_hot(j + 1, levels.size)
    return s.permute(0, 3, 1, 2).to(weights.dtype)


def _render(x, weights, support, plan: _Plan, occlusion: bool):
    B, C, H, W = x.shape
    P = plan.pad
    xp = plan.extend(x)
    wp = plan.extend(weights)
    sp = plan.extend(support)
    out = [None, None]
    trans = [None, None]
    active = torch.nonzero(support.amax(dim=(0, 2, 3)) > 0).flatten().tolist()
    for i in active:
        lay = plan.layer(i)
        h = lay.h
        ys, xs = slice(P - h, P + H + h), slice(P - h, P + W + h)
        a = wp[:, i:i + 1, ys, xs]
        # (B, C + E + 1, Ny, Nx): the weighted image, its weight (only occlusion needs the layer's alpha), support
        planes = torch.cat([xp[:, :, ys, xs] * a] + ([a] if occlusion else []) + [sp[:, i:i + 1, ys, xs]], 1)
        # to the patch layout: patch j of an axis starts at s0 + j * stride
        ty = (lay.R - 1) * lay.sy + lay.Ly
        tx = (lay.Q - 1) * lay.sx + lay.Lx
        planes = F.pad(planes, (-lay.s0x, tx - lay.N[1] + lay.s0x, -lay.s0y, ty - lay.N[0] + lay.s0y))
        E = C + 1 if occlusion else C  # planes convolved
        patches = planes.unfold(2, lay.Ly, lay.sy).unfold(3, lay.Lx, lay.sx) * lay.weights  # (B, E+1, R, Q, Ly, Lx)
        RQ = lay.R * lay.Q
        patches = patches.reshape(B, E + 1, RQ, lay.Ly, lay.Lx)
        cells = torch.nonzero(patches[:, E].detach().amax(dim=(0, 2, 3)) > 0).flatten()
        if cells.numel() == 0:
            continue
        sub = patches[:, :E] if cells.numel() == RQ else patches[:, :E].index_select(2, cells)
        spec = torch.fft.rfft2(sub, s=lay.grid)
        for v in (0, 1):
            otf = lay.otfs[v] if cells.numel() == RQ else lay.otfs[v].index_select(0, cells)
            y = torch.fft.irfft2(spec * otf, s=lay.grid)[..., :lay.K[0], :lay.K[1]]
            if cells.numel() != RQ:
                y = y.new_zeros((B, E, RQ, *lay.K)).index_copy(2, cells, y)
            if RQ == 1:
                canvas = y[:, :, 0]
            else:
                cols = y.permute(0, 1, 3, 4, 2).reshape(B, E * lay.K[0] * lay.K[1], RQ)
                canvas = F.fold(cols, output_size=((lay.R - 1) * lay.sy + lay.K[0], (lay.Q - 1) * lay.sx + lay.K[1]),
                                kernel_size=lay.K, stride=(lay.sy, lay.sx))
            r0, c0 = 2 * h - lay.s0y, 2 * h - lay.s0x
            img = canvas[:, :, r0:r0 + H, c0:c0 + W]
            colour, alpha = img[:, :C], img[:, C:E]
            if not occlusion:
                out[v] = colour if out[v] is None else out[v] + colour
            elif out[v] is None:
                out[v], trans[v] = colour, 1 - alpha
            else:
                out[v] = out[v] + colour * trans[v]  # B_v += C_v,i prod_{j<i} (1 - a_v,j)
                trans[v] = trans[v] * (1 - alpha)
    return tuple(o if o is not None else x.new_zeros((B, C, H, W)) for o in out)


def _reblur(x, defocus, psfs: ReblurPSFs, occlusion, boundary, offset, interpolation, plans: Optional[dict] = None):
    _check_tensor(x, "x")
    _check_tensor(defocus, "defocus", channels=1)
    if defocus.shape[0] != x.shape[0] or defocus.shape[2:] != x.shape[2:]:
        raise ValueError(f"defocus must have shape ({x.shape[0]}, 1, {x.shape[2]}, {x.shape[3]}) to match x; "
                         f"got {tuple(defocus.shape)}")
    _check_options(occlusion, boundary, interpolation)
    shape = (int(x.shape[2]), int(x.shape[3]))
    off = _check_offset(offset, shape, psfs)
    dtype = _work_dtype(x)
    if BOUNDARIES[boundary] == "reflect" and psfs.max_half > 0 and min(shape) < 2:
        raise ValueError(f"boundary 'reflect' needs an image of at least 2x2; got {shape}")
    key = (shape, off, boundary, x.device, dtype)
    plan = plans.get(key) if plans is not None else None
    if plan is None:
        plan = _Plan(psfs, shape, off, boundary, x.device, dtype)
        if plans is not None:
            if len(plans) >= 4:
                plans.pop(next(iter(plans)))
            plans[key] = plan
    xw = x.to(dtype)
    dw = defocus.to(dtype)
    weights = layer_weights(dw, psfs.levels, interpolation)
    support = _support(dw, psfs.levels, weights, interpolation)
    return _render(xw, weights, support, plan, bool(occlusion))


def dp_reblur(x: torch.Tensor, defocus: torch.Tensor, psfs: Any, *, occlusion: bool = True,
              boundary: str = "symmetric", offset: Tuple[int, int] = (0, 0),
              interpolation: str = "linear") -> Tuple[torch.Tensor, torch.Tensor]:
    """The left and right views of ``x`` (B, C, H, W) at ``defocus`` (B, 1, H, W) (module Notes).

    Parameters
    ----------
    x : (B, C, H, W) float tensor
        Sharp image (linear intensities).
    defocus : (B, 1, H, W) float tensor
        Signed defocus in the units of ``psfs.levels`` (CoC radius, or deblur scale).
    psfs : ReblurPSFs or DualPixelPSFGrid
        A grid is converted with :meth:`ReblurPSFs.from_grid` defaults on every call (seconds
        for a full frame): convert once, or use :class:`DPReblur`.
    occlusion : bool
        Occlusion-aware *over* compositing (default) or the naive sum, as the renderer.
    boundary : {'symmetric', 'reflect', 'periodic', 'edge', 'zero'}
    offset : (row, col)
        Position of ``x``'s top-left pixel in the psfs' frame (a crop); cells only.
    interpolation : {'linear', 'nearest'}
        Layer weights of the map (:func:`layer_weights`).

    Returns
    -------
    (left, right) : (B, C, H, W) tensors, float32 (float64 for float64 ``x``).
    """
    return _reblur(x, defocus, _check_psfs(psfs), occlusion, boundary, offset, interpolation)


def _penalty(diff: torch.Tensor, penalty: str, eps: float) -> torch.Tensor:
    if penalty == "l1":
        return diff.abs()
    return torch.sqrt(diff * diff + eps * eps) - eps


def _check_loss_options(penalty: Any, eps: Any, border: Any) -> None:
    if penalty not in PENALTIES:
        raise ValueError(f"penalty must be one of {PENALTIES}; got {penalty!r}")
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not math.isfinite(eps) or eps <= 0:
        raise ValueError(f"eps must be a finite number > 0; got {eps!r}")
    if isinstance(border, bool) or not isinstance(border, numbers.Integral) or border < 0:
        raise ValueError(f"border must be an integer >= 0 (pixels); got {border!r}")


def _loss(views, left, right, mask, penalty, eps, border):
    pl, pr = views
    for name, t in (("left", left), ("right", right)):
        _check_tensor(t, name)
        if t.shape != pl.shape:
            raise ValueError(f"{name} must have the shape of x {tuple(pl.shape)}; got {tuple(t.shape)}")
    B, C, H, W = pl.shape
    if 2 * border >= min(H, W):
        raise ValueError(f"border {border} leaves nothing of a {H}x{W} image")
    m = pl.new_ones((1, 1, H, W))
    if mask is not None:
        _check_tensor(mask, "mask")
        if mask.shape[1] not in (1, C) or mask.shape[0] not in (1, B) or mask.shape[2:] != pl.shape[2:]:
            raise ValueError(f"mask must broadcast to {tuple(pl.shape)} as (1 or B, 1 or C, H, W); got {tuple(mask.shape)}")
        if bool((mask < 0).any()):
            raise ValueError("mask must be >= 0")
        m = mask.to(pl.dtype)
    if border:
        m = m[..., border:H - border, border:W - border]
        pl, pr = pl[..., border:H - border, border:W - border], pr[..., border:H - border, border:W - border]
        left, right = left[..., border:H - border, border:W - border], right[..., border:H - border, border:W - border]
    m = m.expand(B, C, *pl.shape[2:])
    total = m.sum()
    if not bool(total > 0):
        raise ValueError("mask must have a positive weight inside the border")
    rho = _penalty(pl - left.to(pl.dtype), penalty, eps) + _penalty(pr - right.to(pr.dtype), penalty, eps)
    return (rho * m).sum() / (2 * total)


def reblur_loss(x: torch.Tensor, defocus: torch.Tensor, left: torch.Tensor, right: torch.Tensor, psfs: Any, *,
                mask: Optional[torch.Tensor] = None, border: int = 0, penalty: str = "charbonnier",
                eps: float = 1e-3, occlusion: bool = True, boundary: str = "symmetric",
                offset: Tuple[int, int] = (0, 0), interpolation: str = "linear") -> torch.Tensor:
    r"""Self-supervised DP reblur loss: mean robust distance of :func:`dp_reblur`'s views to ``left``, ``right``.

    .. math:: \mathcal L = \frac{\sum_p m_p\, [\rho(\hat L_p - L_p) + \rho(\hat R_p - R_p)]}{2 \sum_p m_p},
              \quad \rho(t) = \sqrt{t^2 + \epsilon^2} - \epsilon \;\text{(Charbonnier) or } |t|,

    over the pixels at least ``border`` from the image's edge, weighted by ``mask`` (>= 0,
    broadcast as (1 or B, 1 or C, H, W)). Scalar, float32 (float64 for float64 ``x``).
    Other arguments as :func:`dp_reblur`.
    """
    _check_loss_options(penalty, eps, border)
    views = dp_reblur(x, defocus, psfs, occlusion=occlusion, boundary=boundary, offset=offset,
                      interpolation=interpolation)
    return _loss(views, left, right, mask, penalty, float(eps), int(border))


class DPReblur(nn.Module):
    """:func:`dp_reblur` as a module; keeps the windows and transfer functions of the last shapes.

    ``psfs`` a :class:`DualPixelPSFGrid` is converted once (``from_grid`` defaults).
    """

    def __init__(self, psfs: Any, *, occlusion: bool = True, boundary: str = "symmetric",
                 interpolation: str = "linear"):
        super().__init__()
        _check_options(occlusion, boundary, interpolation)
        self.psfs = _check_psfs(psfs)
        self.occlusion, self.boundary, self.interpolation = bool(occlusion), boundary, interpolation
        self._plans: dict = {}

    def forward(self, x: torch.Tensor, defocus: torch.Tensor, offset: Tuple[int, int] = (0, 0)):
        return _reblur(x, defocus, self.psfs, self.occlusion, self.boundary, offset, self.interpolation, self._plans)

    def extra_repr(self) -> str:
        return f"psfs={self.psfs.name!r}, occlusion={self.occlusion}, boundary={self.boundary!r}, interpolation={self.interpolation!r}"


class DPReblurLoss(DPReblur):
    """:func:`reblur_loss` as a module: ``loss(x, defocus, left, right, mask=None, offset=(0, 0))``."""

    def __init__(self, psfs: Any, *, border: int = 0, penalty: str = "charbonnier", eps: float = 1e-3,
                 occlusion: bool = True, boundary: str = "symmetric", interpolation: str = "linear"):
        _check_loss_options(penalty, eps, border)
        super().__init__(psfs, occlusion=occlusion, boundary=boundary, interpolation=interpolation)
        self.border, self.penalty, self.eps = int(border), penalty, float(eps)

    def forward(self, x, defocus, left, right, mask=None, offset=(0, 0)):  # type: ignore[override]
        views = super().forward(x, defocus, offset)
        return _loss(views, left, right, mask, self.penalty, self.eps, self.border)

    def reblur(self, x, defocus, offset=(0, 0)):
        """The reblurred views (:class:`DPReblur`)."""
        return super().forward(x, defocus, offset)
