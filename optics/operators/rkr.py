"""Recursive kernel representation (RKR) of spatially-varying defocus blur (NRKNet).

The RKR model of Quan, Wu and Ji (CVPR 2023) writes the blur kernel at every pixel as a
per-pixel mixture of ``J`` atoms built recursively from positive, l1-normalised 3-tap filters:

.. math::

    A_1 = \\Delta, \\qquad A_j = A_{j-1} \\otimes (a_j a_j^\\top), \\quad j = 2, \\dots, J
    \\qquad \\text{(Eq. 2)}

    \\mathcal{D}(I) = \\sum_{j=1}^{J} \\Gamma_j \\odot (I \\otimes A_j)
    \\qquad \\text{(Eq. 4)}

    I \\otimes A_j = ((I \\otimes A_{j-1}) \\otimes a_j) \\otimes a_j^\\top
    \\qquad \\text{(Eq. 5)}

Atom ``j`` (1-based) has support ``(2j - 1) x (2j - 1)``. Eq. 5 makes the blur cost ``6 J``
multiply-adds per pixel instead of ``S^2`` for a direct ``S x S`` spatially-varying kernel.

Public functions
----------------
:func:`rkr_atoms`
    The explicit atom stack ``(J, 2J - 1, 2J - 1)`` (for plotting, fitting and testing).
:func:`rkr_stack` / :func:`rkr_stack_adjoint`
    The ``J`` filtered images ``I (x) A_1 .. I (x) A_J`` of a batch ``(..., H, W)`` computed
    with the recursion of Eq. 5, and the adjoint of that linear map. This is the single
    implementation of the recursion: :func:`rkr_blur` and :class:`learned.models.nrknet.NRKNet` both
    use it.
:func:`rkr_blur` / :func:`rkr_blur_adjoint`
    The operator of Eq. 4 on an ``(H, W)`` or ``(H, W, C)`` image and its exact adjoint.
:func:`symmetric_softmax_taps`
    NRKNet's parametrisation of a symmetric 3-tap filter ``softmax([p0, p1, p0])``.

Conventions
-----------
* Every function works on NumPy arrays, CuPy arrays and torch tensors (with autograd) through
  :func:`optics._backend.namespace`; all array arguments must come from the same library and
  have the same float dtype (float32 stays float32, float64 stays float64).
* Filtering is a true convolution (kernel origin at the centre tap):
  ``(x (x) a)[i] = a[0] x[i + 1] + a[1] x[i] + a[2] x[i - 1]``. For symmetric taps (the NRKNet
  case) convolution and correlation coincide.
* ``boundary`` says how the image is extended beyond its border:

  ``'zero'`` (default)
      The image is zero outside: the result is exactly ``I (x) A_j`` with zero padding
      (``scipy.signal.convolve2d(I, A_j, mode='same')``) and the adjoint is the plain transpose.
      Implemented by padding the input once with ``J - 1`` zeros per side, running the
      recursion (each step zero-padding by one pixel) and cropping; the ``J - 1`` margin makes
      the per-step truncation at the outer border unable to reach the image.
  ``'reflect'``
      Every 1-D step first extends the current image by one pixel per side, mirrored about the
      edge pixel (``d c b | a b c d | c b a``; ``torch.nn.functional.pad(mode='reflect')``,
      ``scipy.ndimage`` ``mode='mirror'``). This is what NRKNet's ``FullRKR`` does.
  ``'symmetric'``
      As ``'reflect'`` with the edge pixel repeated (``c b a | a b c d | d c b``;
      ``scipy.ndimage`` ``mode='reflect'``).

  For the two mirror modes the recursion re-pads at every step; with symmetric taps this equals
  a single convolution with ``A_j`` under the same mirror extension, with asymmetric taps it
  does not. The adjoint is exact for all three (mirror padding is folded back).
* Execution: torch tensors (and :func:`rkr_stack` / :func:`rkr_atoms` for every library) run
  the pure-array recursion below (``_rkr_step``, slicing and multiply-adds only, so autograd
  goes through it); :func:`rkr_blur` / :func:`rkr_blur_adjoint` on NumPy and CuPy arrays
  dispatch the same recursion to the compiled numba / CuPy kernels of
  :mod:`kernels.separable_recursion` (tested against each other).

References
----------
.. [1] Y. Quan, Z. Wu and H. Ji, "Neumann Network with Recursive Kernels for Single Image
   Defocus Deblurring", CVPR 2023, Eq. 2-5.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .._backend import Backend, namespace
from .._validate import check_array

__all__ = [
    "rkr_atoms",
    "rkr_stack",
    "rkr_stack_adjoint",
    "rkr_blur",
    "rkr_blur_adjoint",
    "symmetric_softmax_taps",
    "rkr_kernel_field",
    "BOUNDARIES",
]

#: Boundary extensions accepted by the recursion (see the module docstring).
BOUNDARIES = ("zero", "reflect", "symmetric")


# --------------------------------------------------------------------------------------------
# argument checks
# --------------------------------------------------------------------------------------------
def _dtype_name(x: Any) -> str:
    return str(x.dtype).replace("torch.", "")


def _check_boundary(boundary: Any) -> str:
    if boundary not in BOUNDARIES:
        raise ValueError(f"boundary must be one of {BOUNDARIES}; got {boundary!r}")
    return boundary


def _check_same_dtype(x: Any, name: str, ref: Any, ref_name: str) -> None:
    if x.dtype != ref.dtype:
        raise TypeError(
            f"{name} must have the dtype of {ref_name} ({_dtype_name(ref)}); got {_dtype_name(x)}. "
            "Nothing is cast silently: convert it explicitly."
        )


def _check_taps(a: Any, be: Backend, name: str = "a", *, normalize: bool = False) -> Any:
    """Check (J - 1, ..., 3) taps: finite, non-negative, each filter summing to 1.

    With ``normalize=True`` each filter is divided by its sum instead of requiring sum 1.
    Returns the (possibly normalised) taps.
    """
    check_array(a, name, be)
    if a.ndim < 2 or int(a.shape[-1]) != 3:
        raise ValueError(
            f"{name} must have shape (J - 1, 3) or (J - 1, ..., 3) (one 3-tap filter per recursion "
            f"step); got shape {tuple(a.shape)}"
        )
    xp = be.xp
    if a.shape[0] == 0:  # J = 1: only the identity atom; nothing to check.
        return a
    if not bool(xp.all(a >= 0)):
        raise ValueError(
            f"{name} must be non-negative (RKR atoms are positive 3-tap filters, Eq. 2); "
            f"got minimum {float(xp.min(a)):.3g}"
        )
    sums = xp.sum(a, axis=-1)
    if normalize:
        if not bool(xp.all(sums > 0)):
            raise ValueError(f"{name}: every 3-tap filter must have a positive sum to be normalised")
        return a / sums[..., None]
    eps = float(np.finfo(np.dtype(_dtype_name(a))).eps)
    worst = float(xp.max(xp.abs(sums - 1)))
    if worst > 1e3 * eps:
        raise ValueError(
            f"{name} must be l1-normalised (each 3-tap filter sums to 1, Eq. 2); the largest "
            f"|sum - 1| is {worst:.3g}. Pass normalize=True to divide by the sums."
        )
    return a


# --------------------------------------------------------------------------------------------
# one recursion step along one axis, and its adjoint (the only place the recursion lives)
# --------------------------------------------------------------------------------------------
def _index(axis: int, s: slice) -> tuple:
    """Index tuple selecting ``s`` along ``axis`` (-1 or -2) of an (..., H, W) array."""
    return (Ellipsis, s) if axis == -1 else (Ellipsis, s, slice(None))


def _zeros_like_slab(xp: Any, x: Any, axis: int, length: int) -> Any:
    """Zeros shaped like ``x`` except ``length`` along ``axis`` (same dtype and device)."""
    shape = list(x.shape)
    shape[axis] = length
    return xp.zeros(tuple(shape), dtype=x.dtype, device=_device(x))


def _device(x: Any) -> Any:
    import array_api_compat

    return array_api_compat.device(x)


def _pad1(xp: Any, x: Any, axis: int, boundary: str) -> Any:
    """Extend ``x`` by one sample on each side along ``axis``."""
    if boundary == "zero":
        z = _zeros_like_slab(xp, x, axis, 1)
        return xp.concat([z, x, z], axis=axis)
    if boundary == "reflect":
        head, tail = x[_index(axis, slice(1, 2))], x[_index(axis, slice(-2, -1))]
    else:  # symmetric
        head, tail = x[_index(axis, slice(0, 1))], x[_index(axis, slice(-1, None))]
    return xp.concat([head, x, tail], axis=axis)


def _pad1_adjoint(xp: Any, z: Any, axis: int, boundary: str) -> Any:
    """Adjoint of :func:`_pad1`: crop and fold the two padded samples back where they came from."""
    n = int(z.shape[axis]) - 2
    core = z[_index(axis, slice(1, -1))]
    if boundary == "zero":
        return core
    head, tail = z[_index(axis, slice(0, 1))], z[_index(axis, slice(-1, None))]
    if boundary == "reflect":  # head came from sample 1, tail from sample n - 2
        head_at, tail_at = 1, n - 2
    else:  # symmetric: head came from sample 0, tail from sample n - 1
        head_at, tail_at = 0, n - 1
    fold_head = xp.concat(
        [_zeros_like_slab(xp, head, axis, head_at), head, _zeros_like_slab(xp, head, axis, n - 1 - head_at)],
        axis=axis,
    )
    fold_tail = xp.concat(
        [_zeros_like_slab(xp, tail, axis, tail_at), tail, _zeros_like_slab(xp, tail, axis, n - 1 - tail_at)],
        axis=axis,
    )
    return core + fold_head + fold_tail


def _conv3_valid(x: Any, taps: Sequence[Any], axis: int) -> Any:
    """'Valid' true convolution of an (n + 2)-long axis with a 3-tap filter -> n samples.

    ``out[i] = t0 x[i + 2] + t1 x[i + 1] + t2 x[i]`` (taps broadcast against ``x``).
    """
    t0, t1, t2 = taps
    return (
        t0 * x[_index(axis, slice(2, None))]
        + t1 * x[_index(axis, slice(1, -1))]
        + t2 * x[_index(axis, slice(None, -2))]
    )


def _conv3_valid_adjoint(xp: Any, g: Any, taps: Sequence[Any], axis: int) -> Any:
    """Adjoint of :func:`_conv3_valid`: n samples -> n + 2 samples (a 'full' correlation)."""
    t0, t1, t2 = taps
    z = _zeros_like_slab(xp, g, axis, 2)
    gp = xp.concat([z, g, z], axis=axis)  # gp[q] = g[q - 2]
    return (
        t0 * gp[_index(axis, slice(0, -2))]
        + t1 * gp[_index(axis, slice(1, -1))]
        + t2 * gp[_index(axis, slice(2, None))]
    )


def _step_taps(a_j: Any) -> tuple:
    """Split one step's taps (..., 3) into three arrays shaped (..., 1, 1) for broadcasting."""
    return tuple(a_j[..., k][..., None, None] for k in range(3))


def _rkr_step(xp: Any, x: Any, a_j: Any, boundary: str) -> Any:
    """One recursion step of Eq. 5: ``x -> (x (x) a_j) (x) a_j^T`` (along W, then along H)."""
    taps = _step_taps(a_j)
    x = _conv3_valid(_pad1(xp, x, -1, boundary), taps, -1)
    return _conv3_valid(_pad1(xp, x, -2, boundary), taps, -2)


def _rkr_step_adjoint(xp: Any, y: Any, a_j: Any, boundary: str) -> Any:
    """Adjoint of :func:`_rkr_step`."""
    taps = _step_taps(a_j)
    y = _pad1_adjoint(xp, _conv3_valid_adjoint(xp, y, taps, -2), -2, boundary)
    return _pad1_adjoint(xp, _conv3_valid_adjoint(xp, y, taps, -1), -1, boundary)


def _pad_zeros_hw(xp: Any, x: Any, margin: int) -> Any:
    """Zero-pad the last two axes of ``x`` by ``margin`` samples per side."""
    if margin == 0:
        return x
    x = xp.concat([_zeros_like_slab(xp, x, -1, margin), x, _zeros_like_slab(xp, x, -1, margin)], axis=-1)
    return xp.concat([_zeros_like_slab(xp, x, -2, margin), x, _zeros_like_slab(xp, x, -2, margin)], axis=-2)


def _zero_margin(boundary: str, n_steps: int) -> int:
    """Margin added once around the image: J - 1 zeros for 'zero' (exact I (x) A_j), else 0."""
    return n_steps if boundary == "zero" else 0


def _check_stack_args(x: Any, a: Any, be: Backend, boundary: str, check_taps: bool) -> Any:
    check_array(x, "x", be)
    if x.ndim < 2:
        raise ValueError(f"x must have shape (..., H, W); got {x.ndim}-D array of shape {tuple(x.shape)}")
    _check_same_dtype(a, "a", x, "x")
    if check_taps:
        a = _check_taps(a, be)
    elif a.ndim < 2 or int(a.shape[-1]) != 3:
        raise ValueError(f"a must have shape (J - 1, ..., 3); got shape {tuple(a.shape)}")
    lead = tuple(int(s) for s in a.shape[1:-1])
    try:
        np.broadcast_shapes(lead, tuple(int(s) for s in x.shape[:-2]))
    except ValueError:
        raise ValueError(
            f"a's per-step tap shape {lead} (a.shape[1:-1]) must broadcast against x's leading "
            f"dimensions {tuple(x.shape[:-2])}; got a.shape {tuple(a.shape)}, x.shape {tuple(x.shape)}"
        ) from None
    min_side = 2 if boundary == "reflect" else 1
    if int(x.shape[-1]) < min_side or int(x.shape[-2]) < min_side:
        raise ValueError(
            f"x must be at least {min_side}x{min_side} pixels for boundary={boundary!r}; "
            f"got {tuple(x.shape[-2:])}"
        )
    return a


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------
def rkr_atoms(a: Any, *, normalize: bool = False) -> Any:
    """Explicit RKR atom kernels ``A_1 .. A_J`` (NRKNet Eq. 2).

    Parameters
    ----------
    a : array, shape (J - 1, 3)
        The 3-tap filters ``a_2 .. a_J`` (row ``j - 2`` is ``a_j``), non-negative and each
        summing to 1. NumPy, CuPy or torch; float32 or float64.
    normalize : bool, default False
        If True, divide each filter by its sum instead of requiring l1-normalised input
        (negative taps are still refused).

    Returns
    -------
    atoms : array, shape (J, 2J - 1, 2J - 1)
        ``atoms[j - 1]`` is ``A_j``. Every atom is centred in the common ``(2J - 1)`` square
        (origin at the centre pixel ``(J - 1, J - 1)``); ``A_j`` is zero outside its central
        ``(2j - 1) x (2j - 1)`` support. Each atom sums to 1. Same library and dtype as ``a``.

    Raises
    ------
    TypeError
        If ``a`` is not a float32/float64 array.
    ValueError
        If ``a`` has the wrong shape, non-finite or negative entries, or (without ``normalize``)
        a filter whose sum is not 1.

    Notes
    -----
    .. math:: A_1 = \\Delta, \\quad A_j = A_{j-1} \\otimes (a_j a_j^\\top), \\quad j > 1.

    Computed by running the recursion of :func:`rkr_stack` on a centred delta with zero
    boundary, so the atoms are by construction those used by :func:`rkr_blur`.

    References
    ----------
    .. [1] Y. Quan, Z. Wu and H. Ji, "Neumann Network with Recursive Kernels for Single Image
       Defocus Deblurring", CVPR 2023, Eq. 2-3.

    Examples
    --------
    >>> import numpy as np
    >>> atoms = rkr_atoms(np.array([[0.25, 0.5, 0.25]] * 2))
    >>> atoms.shape
    (3, 5, 5)
    >>> float(atoms[2].sum())
    1.0
    """
    be = namespace(a)
    check_array(a, "a", be)
    if a.ndim != 2:
        raise ValueError(f"a must have shape (J - 1, 3); got {a.ndim}-D array of shape {tuple(a.shape)}")
    a = _check_taps(a, be, normalize=normalize)
    xp = be.xp
    n_atoms = int(a.shape[0]) + 1
    side = 2 * n_atoms - 1
    delta = xp.zeros((side, side), dtype=a.dtype, device=_device(a))
    delta[n_atoms - 1, n_atoms - 1] = 1  # item assignment works for NumPy, CuPy and torch
    return rkr_stack(delta, a, boundary="zero", check_taps=False)


def rkr_stack(x: Any, a: Any, *, boundary: str = "zero", check_taps: bool = True) -> Any:
    """The ``J`` filtered images ``x (x) A_1, ..., x (x) A_J`` via the recursion of Eq. 5.

    Parameters
    ----------
    x : array, shape (..., H, W)
        Images; every leading index is filtered independently.
    a : array, shape (J - 1, 3) or (J - 1, ..., 3)
        Step filters ``a_2 .. a_J``. Middle dimensions ``a.shape[1:-1]`` broadcast against
        ``x.shape[:-2]`` (e.g. ``(J - 1, C, 3)`` gives each channel of ``x`` of shape
        ``(B, C, H, W)`` its own filters, as NRKNet does). Same library and dtype as ``x``.
    boundary : {'zero', 'reflect', 'symmetric'}, default 'zero'
        Image extension (see the module docstring): ``'zero'`` gives exactly
        ``convolve2d(x, A_j, mode='same')`` (the recursion runs on ``x`` padded once with
        ``J - 1`` zeros per side); the mirror modes re-pad by one pixel at every step.
    check_taps : bool, default True
        Check that the taps are non-negative and l1-normalised (costs a device sync on GPU).
        Pass False for taps that are so by construction (e.g. from a softmax).

    Returns
    -------
    stack : array, shape (J, ..., H, W)
        ``stack[j - 1] = x (x) A_j`` (``stack[0]`` is ``x`` itself); the leading shape is the
        broadcast of ``x.shape[:-2]`` and ``a.shape[1:-1]``.

    Notes
    -----
    .. math:: x \\otimes A_j = ((x \\otimes A_{j-1}) \\otimes a_j) \\otimes a_j^\\top

    Each step filters along W and then along H, padding one pixel per side first: 6 multiply-
    adds per pixel and step. Memory is ``J`` images (use :func:`rkr_blur` to accumulate a
    weighted sum without holding the stack).

    References
    ----------
    .. [1] Y. Quan, Z. Wu and H. Ji, CVPR 2023, Eq. 5.
    """
    be = namespace(x, a)
    boundary = _check_boundary(boundary)
    a = _check_stack_args(x, a, be, boundary, check_taps)
    xp = be.xp
    n_steps = int(a.shape[0])
    margin = _zero_margin(boundary, n_steps)
    h, w = int(x.shape[-2]), int(x.shape[-1])
    current = _pad_zeros_hw(xp, x, margin)
    out = [x]
    for j in range(n_steps):
        current = _rkr_step(xp, current, a[j], boundary)
        out.append(current[..., margin : margin + h, margin : margin + w])
    if len(out) > 1 and tuple(out[-1].shape) != tuple(x.shape):  # taps broadcast x's batch
        out[0] = xp.broadcast_to(x, tuple(out[-1].shape))
    return xp.stack(out, axis=0)


def rkr_stack_adjoint(stack: Any, a: Any, *, boundary: str = "zero", check_taps: bool = True) -> Any:
    """Adjoint of :func:`rkr_stack`: ``sum_j A_j^T stack[j - 1]``.

    Parameters
    ----------
    stack : array, shape (J, ..., H, W)
        One image per atom.
    a : array, shape (J - 1, 3) or (J - 1, ..., 3)
        The taps given to :func:`rkr_stack` (middle dimensions broadcast against
        ``stack.shape[1:-2]``).
    boundary : {'zero', 'reflect', 'symmetric'}, default 'zero'
        As in :func:`rkr_stack`.
    check_taps : bool, default True
        As in :func:`rkr_stack`.

    Returns
    -------
    x : array, shape (..., H, W)
        With ``<rkr_stack(x, a), stack> = <x, rkr_stack_adjoint(stack, a)>`` up to rounding.

    Notes
    -----
    Horner form: ``r = stack[J-1]``; for ``j = J-1 .. 1``: ``r = S_j^T r + stack[j - 1]``,
    with ``S_j`` one step of Eq. 5 and ``S_j^T`` its exact transpose (the boundary padding folded
    back onto the samples it copied); for ``'zero'`` on the ``J - 1``-padded domain, cropped.
    """
    be = namespace(stack, a)
    boundary = _check_boundary(boundary)
    check_array(stack, "stack", be)
    if stack.ndim < 3:
        raise ValueError(f"stack must have shape (J, ..., H, W); got shape {tuple(stack.shape)}")
    a = _check_stack_args(stack[0], a, be, boundary, check_taps)
    if int(stack.shape[0]) != int(a.shape[0]) + 1:
        raise ValueError(
            f"stack must hold J = a.shape[0] + 1 = {int(a.shape[0]) + 1} images; got {int(stack.shape[0])}"
        )
    xp = be.xp
    n_steps = int(a.shape[0])
    margin = _zero_margin(boundary, n_steps)
    h, w = int(stack.shape[-2]), int(stack.shape[-1])
    result = _pad_zeros_hw(xp, stack[-1], margin)
    for j in range(n_steps - 1, -1, -1):
        result = _rkr_step_adjoint(xp, result, a[j], boundary) + _pad_zeros_hw(xp, stack[j], margin)
    return result[..., margin : margin + h, margin : margin + w]


def _blur_args(image: Any, gamma: Any, a: Any, be: Backend, name: str, boundary: str, check_taps: bool):
    """Validate rkr_blur arguments; return channel-first image, gamma and taps."""
    check_array(image, name, be)
    if image.ndim not in (2, 3):
        raise ValueError(
            f"{name} must be (H, W) or (H, W, C); got {image.ndim}-D array of shape {tuple(image.shape)}"
        )
    check_array(gamma, "gamma", be)
    _check_same_dtype(gamma, "gamma", image, name)
    _check_same_dtype(a, "a", image, name)
    h, w = int(image.shape[0]), int(image.shape[1])
    if a.ndim not in (2, 3) or int(a.shape[-1]) != 3:
        raise ValueError(f"a must have shape (J - 1, 3) or (J - 1, C, 3); got shape {tuple(a.shape)}")
    n_atoms = int(a.shape[0]) + 1
    ok_shapes = [(n_atoms, h, w)] + ([(n_atoms, h, w, int(image.shape[2]))] if image.ndim == 3 else [])
    if tuple(int(s) for s in gamma.shape) not in ok_shapes:
        raise ValueError(
            f"gamma must have shape (J, H, W) = {ok_shapes[0]}"
            + (f" or (J, H, W, C) = {ok_shapes[1]}" if len(ok_shapes) > 1 else "")
            + f" (J = a.shape[0] + 1); got {tuple(gamma.shape)}"
        )
    if a.ndim == 3:
        if image.ndim != 3 or int(a.shape[1]) != int(image.shape[2]):
            raise ValueError(
                f"per-channel taps a of shape (J - 1, C, 3) need an (H, W, C) {name} with the same C; "
                f"got a.shape {tuple(a.shape)} and {name}.shape {tuple(image.shape)}"
            )
    if check_taps:
        a = _check_taps(a, be)
    xp = be.xp
    if image.ndim == 3:  # (H, W, C) -> (C, H, W); gamma (J, H, W[, C]) -> (J, 1 or C, H, W)
        image = xp.permute_dims(image, (2, 0, 1))
        gamma = xp.permute_dims(gamma, (0, 3, 1, 2)) if gamma.ndim == 4 else gamma[:, None]
    min_side = 2 if boundary == "reflect" else 1
    if h < min_side or w < min_side:
        raise ValueError(f"{name} must be at least {min_side}x{min_side} for boundary={boundary!r}; got {(h, w)}")
    return image, gamma, a


def _compiled_blur(backend: str, image: Any, x: Any, g: Any, a: Any, boundary: str, adjoint: bool) -> Any:
    """NumPy/CuPy dispatch of rkr_blur(_adjoint) to the numba/CuPy kernels of kernels.separable_recursion.

    ``x`` (C, H, W) or (H, W), ``g`` (J, 1 or C, H, W) or (J, H, W), ``a`` (J - 1, [C,] 3) as
    returned by :func:`_blur_args`; the result has the layout of ``image``.
    """
    from kernels import separable_recursion as sr

    if x.ndim == 2:
        x, g = x[None], g[:, None]
    taps = a if a.ndim == 3 else a[:, None, :]
    if backend == "numpy":
        fn = sr.recursive_blur_adjoint_numba if adjoint else sr.recursive_blur_numba
    else:
        fn = sr.recursive_blur_adjoint_cupy if adjoint else sr.recursive_blur_cupy
    out = fn(x, g, taps, boundary)
    return out[0] if image.ndim == 2 else out.transpose(1, 2, 0)


def rkr_blur(image: Any, gamma: Any, a: Any, *, boundary: str = "zero", check_taps: bool = True) -> Any:
    """Spatially-varying RKR blur ``D(I) = sum_j Gamma_j * (I (x) A_j)`` (NRKNet Eq. 4).

    Parameters
    ----------
    image : array, shape (H, W) or (H, W, C)
        Sharp image. NumPy, CuPy or torch (autograd supported); float32 or float64.
    gamma : array, shape (J, H, W) or (J, H, W, C)
        Coefficient maps ``Gamma_1 .. Gamma_J`` (one per atom; shared by the channels when
        3-D). Same library and dtype as ``image``. Not constrained: the kernel at pixel ``p``,
        ``K_p = sum_j gamma[j, p] A_j``, sums to ``sum_j gamma[j, p]``.
    a : array, shape (J - 1, 3) or (J - 1, C, 3)
        Step filters ``a_2 .. a_J``, non-negative, each summing to 1; the 3-D form gives each
        colour channel its own atoms. Same library and dtype as ``image``.
    boundary : {'zero', 'reflect', 'symmetric'}, default 'zero'
        Image extension (module docstring). With ``'zero'`` the result equals
        ``sum_j gamma_j * convolve2d(I, A_j, mode='same')`` (zero padding) exactly; the
        recursion then runs on the image padded with ``J - 1`` zeros per side.
    check_taps : bool, default True
        Check that ``a`` is non-negative and l1-normalised.

    Returns
    -------
    blurred : array, shape of ``image``
        Same library, device and dtype as ``image``.

    Raises
    ------
    TypeError
        Non-float input, mixed libraries or mixed dtypes.
    ValueError
        Wrong shapes, non-finite values, taps that are negative or do not sum to 1, unknown
        ``boundary``.

    Notes
    -----
    .. math::

        \\mathcal{D}(I)(p) = \\sum_{j=1}^{J} \\Gamma_j(p)\\, (I \\otimes A_j)(p), \\qquad
        I \\otimes A_j = ((I \\otimes A_{j-1}) \\otimes a_j) \\otimes a_j^\\top .

    The filtered images are produced one at a time by the recursion of :func:`rkr_stack` and
    accumulated, so memory stays at a few images whatever ``J``. Cost: ``6 (J - 1) + J``
    multiply-adds per pixel and channel.

    References
    ----------
    .. [1] Y. Quan, Z. Wu and H. Ji, "Neumann Network with Recursive Kernels for Single Image
       Defocus Deblurring", CVPR 2023, Eq. 4-5.
    """
    be = namespace(image, gamma, a)
    boundary = _check_boundary(boundary)
    x, g, a = _blur_args(image, gamma, a, be, "image", boundary, check_taps)
    xp = be.xp
    h, w = int(image.shape[0]), int(image.shape[1])
    margin = _zero_margin(boundary, int(a.shape[0]))
    x, g = _pad_zeros_hw(xp, x, margin), _pad_zeros_hw(xp, g, margin)
    if be.name in ("numpy", "cupy"):  # compiled kernels (kernels.separable_recursion)
        out = _compiled_blur(be.name, image, x, g, a, boundary, adjoint=False)
    else:
        current = x
        out = g[0] * current
        for j in range(int(a.shape[0])):
            current = _rkr_step(xp, current, a[j], boundary)
            out = out + g[j + 1] * current
        if image.ndim == 3:
            out = xp.permute_dims(out, (1, 2, 0))
    return out[margin : margin + h, margin : margin + w, ...]


def rkr_blur_adjoint(y: Any, gamma: Any, a: Any, *, boundary: str = "zero", check_taps: bool = True) -> Any:
    """Adjoint of :func:`rkr_blur`: ``D^T(y) = sum_j A_j^T (Gamma_j * y)``.

    Parameters
    ----------
    y : array, shape (H, W) or (H, W, C)
        Image in the range of :func:`rkr_blur`.
    gamma, a, boundary, check_taps
        As in :func:`rkr_blur`.

    Returns
    -------
    x : array, shape of ``y``
        With ``<rkr_blur(x, gamma, a), y> = <x, rkr_blur_adjoint(y, gamma, a)>`` up to rounding
        (for every ``boundary``). With ``'zero'`` and symmetric taps ``A_j^T = A_j``.

    Notes
    -----
    Horner form of :func:`rkr_stack_adjoint` applied to ``Gamma_j * y``:
    ``r = Gamma_J y``; for ``j = J-1 .. 1``: ``r = S_{j+1}^T r + Gamma_j y``.

    References
    ----------
    .. [1] Y. Quan, Z. Wu and H. Ji, CVPR 2023, Eq. 4.
    """
    be = namespace(y, gamma, a)
    boundary = _check_boundary(boundary)
    yy, g, a = _blur_args(y, gamma, a, be, "y", boundary, check_taps)
    xp = be.xp
    h, w = int(y.shape[0]), int(y.shape[1])
    n_steps = int(a.shape[0])
    margin = _zero_margin(boundary, n_steps)
    yy, g = _pad_zeros_hw(xp, yy, margin), _pad_zeros_hw(xp, g, margin)
    if be.name in ("numpy", "cupy"):  # compiled kernels (kernels.separable_recursion)
        result = _compiled_blur(be.name, y, yy, g, a, boundary, adjoint=True)
    else:
        result = g[n_steps] * yy
        for j in range(n_steps - 1, -1, -1):
            result = _rkr_step_adjoint(xp, result, a[j], boundary) + g[j] * yy
        if y.ndim == 3:
            result = xp.permute_dims(result, (1, 2, 0))
    return result[margin : margin + h, margin : margin + w, ...]


def symmetric_softmax_taps(logits: Any) -> Any:
    """NRKNet's symmetric, positive, l1-normalised 3-tap filters from 2 free parameters.

    Parameters
    ----------
    logits : array, shape (..., 2)
        ``(p0, p1)`` per filter (NRKNet stores them as a (63, 1, 1, 2) parameter).

    Returns
    -------
    taps : array, shape (..., 3)
        ``softmax([p0, p1, p0]) = [e^p0, e^p1, e^p0] / (2 e^p0 + e^p1)``; same library and
        dtype (differentiable in torch).

    Notes
    -----
    Matches ``FullRKR`` of the official code: the parameter is reflect-padded along the last
    axis (``[p0, p1] -> [p0, p1, p0]``) and softmax-normalised, which enforces the positivity
    and l1-normalisation of Eq. 2 (paper Sec. 3.3, "a softmax layer is attached behind each
    a_j") and symmetry.
    """
    be = namespace(logits)
    check_array(logits, "logits", be)
    if logits.ndim < 1 or int(logits.shape[-1]) != 2:
        raise ValueError(f"logits must have shape (..., 2); got shape {tuple(logits.shape)}")
    xp = be.xp
    p = xp.concat([logits, logits[..., 0:1]], axis=-1)
    p = p - xp.max(p, axis=-1, keepdims=True)
    e = xp.exp(p)
    return e / xp.sum(e, axis=-1, keepdims=True)


def rkr_kernel_field(gamma: np.ndarray, atoms: np.ndarray, rows_per_chunk: int = 64) -> np.ndarray:
    r"""Per-pixel kernels of an RKR blur, :math:`K_p = \sum_j \Gamma_j(p) A_j` (NRKNet Eq. 1 and 4).

    Parameters
    ----------
    gamma : ndarray, shape (J, H, W)
        Coefficient maps.
    atoms : ndarray, shape (J, S, S)
        Atoms from :func:`rkr_atoms` (all centred in the largest support ``S = 2J - 1``).
    rows_per_chunk : int
        Rows built per matrix product (bounds the temporary memory).

    Returns
    -------
    ndarray, shape (H, W, S, S)
        One kernel per output pixel, the input of :func:`optics.spatially_varying_blur`, which then
        computes the same image as :func:`rkr_blur` (``4 H W S^2`` bytes in float32: 6.4 GB at
        1024 x 1024 with S = 39).
    """
    n_atoms, h, w = gamma.shape
    if atoms.ndim != 3 or atoms.shape[0] != n_atoms or atoms.shape[1] != atoms.shape[2]:
        raise ValueError(f"atoms must be (J, S, S) with J = {n_atoms} (gamma's first axis); got {atoms.shape}")
    s = atoms.shape[-1]
    field = np.empty((h, w, s, s), dtype=gamma.dtype)
    flat = atoms.reshape(n_atoms, s * s).astype(gamma.dtype, copy=False)
    for r0 in range(0, h, rows_per_chunk):
        r1 = min(h, r0 + rows_per_chunk)
        field[r0:r1] = (gamma[:, r0:r1].reshape(n_atoms, -1).T @ flat).reshape(r1 - r0, w, s, s)
    return field
