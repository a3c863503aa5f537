"""Tests of learned.training.reblur: the torch layered DP forward model against optics' renderers."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
import torch

from learned.training.reblur import DPReblur, DPReblurLoss, ReblurPSFs, dp_reblur, layer_weights, reblur_loss
from optics.dual_pixel.deblur import DualPixelPSFGrid
from optics.operators.convolution import BOUNDARIES
from optics.render.layered import render_coc_layers

#: Largest |torch - renderer| on [0, 1] images (measured: 4.2e-7 float32).
ATOL32 = 2e-6
ATOL64 = 1e-12


def _scene(H=40, W=56, seed=0):
    """A random image and a CoC map with a vertical depth edge (-3 | 4) and a block at 1."""
    rng = np.random.default_rng(seed)
    img = rng.random((H, W))
    coc = np.where(np.arange(W)[None, :] < W // 2 - 3, -3.0, 4.0) * np.ones((H, 1))
    coc[5:15, 5:12] = 1.0
    return img, coc


def _t(a, dtype=torch.float32):
    return torch.as_tensor(np.ascontiguousarray(a), dtype=dtype)[None, None]


def _grid(rows=2, cols=3, cell=12, n=7, seed=1) -> DualPixelPSFGrid:
    """Different off-centre left/right kernels per cell (left heavier on one side)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: n, : n] - n // 2
    left = np.empty((rows, cols, n, n))
    right = np.empty_like(left)
    for r in range(rows):
        for c in range(cols):
            disc = ((yy - 0.4 * r) ** 2 + (xx - 0.3 * c) ** 2 <= (2.0 + 0.5 * rng.random()) ** 2).astype(float)
            left[r, c] = disc * (1.0 + 0.8 * (xx < 0)) + 0.01
            right[r, c] = disc * (1.0 + 0.8 * (xx > 0)) + 0.01
    return DualPixelPSFGrid(left / left.sum((2, 3), keepdims=True), right / right.sum((2, 3), keepdims=True), cell)


def _reference(img, d, psfs: ReblurPSFs, *, occlusion=True, boundary="symmetric", offset=(0, 0)):
    """Brute force in NumPy: every (layer, cell) convolved over the whole padded frame, then composited."""
    H, W = img.shape
    P = psfs.max_half
    mode = BOUNDARIES[boundary]
    lev = psfs.levels
    f = np.interp(d, lev, np.arange(lev.size))
    w = np.maximum(0.0, 1.0 - np.abs(f[None] - np.arange(lev.size)[:, None, None]))

    def pad(a):
        return np.pad(a, [(0, 0)] * (a.ndim - 2) + [(P, P), (P, P)], mode=mode)

    xp, wp = pad(img), pad(w)

    def cell_weights(edges, n, off):
        y = np.clip(np.arange(n + 2 * P) - P, 0, n - 1) + off
        if edges is None:
            return np.ones((1, y.size))
        R = edges.size - 1
        if psfs.blend == "nearest":
            return np.stack([(y >= edges[r]) & (y < edges[r + 1]) | ((r == R - 1) & (y >= edges[-1])) for r in range(R)]).astype(float)
        centre = (edges[:-1] + edges[1:] - 1) / 2
        t = np.maximum(0, 1 - np.abs(y[None] - centre[:, None]) / np.diff(edges)[:, None])
        return t / t.sum(0)

    cy = cell_weights(psfs.row_edges, H, offset[0])
    cx = cell_weights(psfs.col_edges, W, offset[1])
    views = []
    for side in (psfs.left, psfs.right):
        out = np.zeros((H, W))
        trans = np.ones((H, W))
        for i in range(lev.size):
            colour = np.zeros((H, W))
            alpha = np.zeros((H, W))
            for r in range(cy.shape[0]):
                for q in range(cx.shape[0]):
                    m = wp[i] * cy[r][:, None] * cx[q][None, :]
                    k = side[i][r, q]
                    colour += scipy.signal.convolve2d(xp * m, k, mode="same")[P:P + H, P:P + W]
                    alpha += scipy.signal.convolve2d(m, k, mode="same")[P:P + H, P:P + W]
            if occlusion:
                out += colour * trans
                trans *= 1 - alpha
            else:
                out += colour
        views.append(out)
    return views


# (a) forward = the renderers --------------------------------------------------------------------
@pytest.mark.parametrize("occlusion", [True, False])
@pytest.mark.parametrize("boundary", sorted(BOUNDARIES))
def test_forward_equals_render_coc_layers(occlusion, boundary):
    """Three layers with depth edges (occlusion included): equal to the renderer to float32 rounding."""
    img, coc = _scene()
    ref = render_coc_layers(img.astype(np.float32), coc, occlusion=occlusion, boundary=boundary)
    psfs = ReblurPSFs.from_model(np.arange(-3.0, 5.0))
    left, right = dp_reblur(_t(img), _t(coc), psfs, occlusion=occlusion, boundary=boundary)
    assert left.dtype == torch.float32
    np.testing.assert_allclose(left[0, 0].numpy(), ref.left, rtol=0, atol=ATOL32)
    np.testing.assert_allclose(right[0, 0].numpy(), ref.right, rtol=0, atol=ATOL32)


@pytest.mark.parametrize("coc", [2.5, -4.0])
def test_single_depth_float64_and_butterworth(coc):
    img, _ = _scene(24, 30)
    c = np.full(img.shape, coc)
    for model in ("half_disc", "butterworth"):
        ref = render_coc_layers(img, c, model=model, coc_step=abs(coc))  # one layer at exactly coc
        left, right = dp_reblur(_t(img, torch.float64), _t(c, torch.float64), ReblurPSFs.from_model([coc], model))
        np.testing.assert_allclose(left[0, 0].numpy(), ref.left, rtol=0, atol=ATOL64)
        np.testing.assert_allclose(right[0, 0].numpy(), ref.right, rtol=0, atol=ATOL64)


@pytest.mark.parametrize("occlusion", [True, False])
def test_forward_equals_field_renderer(occlusion):
    """The calibrated Pixel 4 field on 16 px tiles (kernels vary per tile), off-centre crop of the frame."""
    from optics.dual_pixel.pixel4 import pixel4_dual_pixel_field

    img, coc = _scene(40, 56)
    field = pixel4_dual_pixel_field()
    ref = render_coc_layers(img.astype(np.float32), coc, model="calibrated", psf_field=field, tile=16,
                            field_origin=(300.0, 200.0), occlusion=occlusion)
    psfs = ReblurPSFs.from_field(field, np.arange(-3.0, 5.0), img.shape, tile=16, origin=(300.0, 200.0))
    assert psfs.left[0].shape[:2] == (3, 4)
    assert not np.allclose(psfs.left[0][0, 0], psfs.left[0][2, 3])
    left, right = dp_reblur(_t(img), _t(coc), psfs, occlusion=occlusion)
    np.testing.assert_allclose(left[0, 0].numpy(), ref.left, rtol=0, atol=ATOL32)
    np.testing.assert_allclose(right[0, 0].numpy(), ref.right, rtol=0, atol=ATOL32)


@pytest.mark.parametrize("blend", ["bilinear", "nearest"])
@pytest.mark.parametrize("offset", [(0, 0), (5, 7)])
def test_grid_cells_equal_brute_force(blend, offset):
    """Deblur-grid kernels per cell (windows + overlap-add) = every cell convolved over the frame, soft map."""
    grid = _grid()
    psfs = ReblurPSFs.from_grid(grid, (-0.6, 0.5, 1.2), blend=blend)
    H, W = 24 - offset[0], 36 - offset[1]
    rng = np.random.default_rng(3)
    img = rng.random((H, W))
    d = np.clip(rng.normal(0.3, 0.6, (H, W)), -0.8, 1.4)  # soft, partly clamped
    ref = _reference(img, d, psfs, offset=offset, boundary="reflect")
    left, right = dp_reblur(_t(img, torch.float64), _t(d, torch.float64), psfs, offset=offset, boundary="reflect")
    np.testing.assert_allclose(left[0, 0].numpy(), ref[0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(right[0, 0].numpy(), ref[1], rtol=0, atol=1e-12)


def test_crop_equals_frame_away_from_crop_border():
    grid = _grid()
    psfs = ReblurPSFs.from_grid(grid, (-0.6, 0.5, 1.2))
    rng = np.random.default_rng(4)
    img, d = rng.random((24, 36)), rng.uniform(-0.6, 1.2, (24, 36))
    full = dp_reblur(_t(img, torch.float64), _t(d, torch.float64), psfs)
    crop = dp_reblur(_t(img[4:20, 9:33], torch.float64), _t(d[4:20, 9:33], torch.float64), psfs, offset=(4, 9))
    h = psfs.max_half
    for a, b in zip(full, crop):
        np.testing.assert_allclose(b[0, 0, h:-h, h:-h].numpy(), a[0, 0, 4 + h:20 - h, 9 + h:33 - h], rtol=0, atol=1e-12)


def test_from_grid_kernels_and_recentring():
    grid = _grid()
    raw = ReblurPSFs.from_grid(grid, (-0.6, 1.2), recentre=False)
    kl, kr, _ = grid.pair(1, 2, -0.6)
    np.testing.assert_array_equal(raw.left[0][1, 2], kl)
    np.testing.assert_array_equal(raw.right[0][1, 2], kr)
    centred = ReblurPSFs.from_grid(grid, (-0.6, 1.2))
    n = centred.left[1].shape[2]
    c = np.arange(n) - n // 2
    for i in range(2):
        mean = (centred.left[i] + centred.right[i]) / 2  # (R, Q, n, n)
        np.testing.assert_allclose(mean.sum((2, 3)), 1.0, atol=1e-12)
        np.testing.assert_allclose(np.einsum("rqyx,y->rq", mean, c), 0, atol=1e-9)
        np.testing.assert_allclose(np.einsum("rqyx,x->rq", mean, c), 0, atol=1e-9)


def test_layer_weights_one_hot_on_levels_and_tent_between():
    d = torch.tensor([[[[-3.0, -2.5, 1.0, 9.0]]]])
    w = layer_weights(d, [-3.0, -2.0, 1.0])
    expected = [[1, 0.5, 0, 0], [0, 0.5, 0, 0], [0, 0, 1, 1]]
    np.testing.assert_array_equal(w[0, :, 0].numpy(), expected)
    np.testing.assert_array_equal(layer_weights(d, [-3.0, -2.0, 1.0], "nearest")[0, :, 0].numpy(),
                                  [[1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 1, 1]])


# (b) gradients ------------------------------------------------------------------------------------
@pytest.mark.parametrize("source", ["model", "grid"])
def test_gradcheck_x_and_defocus(source):
    rng = np.random.default_rng(5)
    if source == "model":
        psfs, H, W, lo, hi = ReblurPSFs.from_model([-2.0, -1.0, 1.0, 2.5]), 7, 9, -2.4, 2.9
    else:
        psfs, H, W, lo, hi = ReblurPSFs.from_grid(_grid(rows=2, cols=2, cell=5, n=5), (-0.6, 0.5, 1.2)), 10, 10, -0.7, 1.3
    x = torch.tensor(rng.random((1, 1, H, W)), requires_grad=True)
    d = torch.tensor(rng.uniform(lo, hi, (1, 1, H, W)), requires_grad=True)  # some clamped, none on a level
    left, right = (t.detach() + 0.05 * torch.tensor(rng.normal(size=(1, 1, H, W))) for t in dp_reblur(x, d, psfs))
    views, loss = DPReblur(psfs), DPReblurLoss(psfs, border=1)  # the modules keep their plans: fast calls
    assert torch.autograd.gradcheck(views, (x, d), eps=1e-6, atol=1e-7, fast_mode=True)
    assert torch.autograd.gradcheck(lambda a, b: loss(a, b, left, right), (x, d), eps=1e-6, atol=1e-7, fast_mode=True)
    grad = torch.autograd.grad(reblur_loss(x, d, left, right, psfs), d)[0]
    assert grad.abs().sum() > 0


# (c) function == module --------------------------------------------------------------------------
def test_module_equals_function():
    img, coc = _scene(20, 28)
    psfs = ReblurPSFs.from_model(np.arange(-3.0, 5.0))
    x, d = _t(img).repeat(2, 1, 1, 1), _t(coc).repeat(2, 1, 1, 1)
    d[1] = d[1] * 0.5 + 0.3
    left, right = dp_reblur(x, d, psfs, occlusion=False, boundary="edge")
    mask = torch.ones(2, 1, 20, 28)
    mask[:, :, :, :3] = 0
    f = reblur_loss(x, d * 0.9, left, right, psfs, mask=mask, border=2, penalty="l1", occlusion=False, boundary="edge")
    module = DPReblurLoss(psfs, border=2, penalty="l1", occlusion=False, boundary="edge")
    for _ in range(2):  # the second call reuses the module's plan
        assert torch.equal(module(x, d * 0.9, left, right, mask=mask), f)
    views = DPReblur(psfs, occlusion=False, boundary="edge")(x, d)
    assert torch.equal(views[0], left) and torch.equal(views[1], right)
    grid = _grid()
    g = torch.rand(1, 1, 24, 36), torch.rand(1, 1, 24, 36)
    assert all(torch.equal(a, b) for a, b in zip(DPReblur(grid)(*g), dp_reblur(*g, grid)))  # a grid is converted


# (d) bad input -------------------------------------------------------------------------------------
@pytest.mark.parametrize("change, name", [
    (dict(x=torch.rand(1, 1, 8)), "x"),
    (dict(x=torch.full((1, 1, 8, 8), float("nan"))), "x"),
    (dict(defocus=torch.rand(1, 2, 8, 8)), "defocus"),
    (dict(defocus=torch.rand(1, 1, 8, 9)), "defocus"),
    (dict(left=torch.rand(1, 1, 8, 9)), "left"),
    (dict(right=torch.rand(2, 1, 8, 8)), "right"),
    (dict(mask=-torch.ones(1, 1, 8, 8)), "mask"),
    (dict(mask=torch.zeros(1, 1, 8, 8)), "mask"),
    (dict(border=4), "border"),
    (dict(border=-1), "border"),
    (dict(penalty="l2"), "penalty"),
    (dict(eps=0.0), "eps"),
    (dict(boundary="mirror"), "boundary"),
    (dict(interpolation="cubic"), "interpolation"),
    (dict(occlusion="yes"), "occlusion"),
    (dict(offset=(1, -1)), "offset"),
])
def test_bad_input_one_line_value_error(change, name):
    args = dict(x=torch.rand(1, 1, 8, 8), defocus=torch.rand(1, 1, 8, 8), left=torch.rand(1, 1, 8, 8),
                right=torch.rand(1, 1, 8, 8), psfs=ReblurPSFs.from_model([0.0, 1.0]))
    args.update(change)
    with pytest.raises(ValueError, match=name) as err:
        reblur_loss(**args)
    assert "\n" not in str(err.value)


def test_bad_psfs_and_offset_outside_frame():
    with pytest.raises(TypeError, match="psfs"):
        dp_reblur(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8), "pixel4")
    with pytest.raises(ValueError, match="offset"):
        dp_reblur(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8), ReblurPSFs.from_grid(_grid(), (0.5, 1.0)), offset=(20, 0))
    with pytest.raises(ValueError, match="levels"):
        ReblurPSFs.from_model([1.0, 0.0])


# (e) the loss sees defocus and its sign ----------------------------------------------------------
def test_true_map_beats_zero_defocus_and_shortcuts():
    """K_L != K_R: the true map scores far below d = 0 (x or the centre view), the sign-flipped map."""
    img, coc = _scene(48, 64, seed=7)
    ref = render_coc_layers(img.astype(np.float32), coc)
    psfs = ReblurPSFs.from_model(np.arange(-4.0, 5.0))
    assert not np.allclose(ref.left, ref.right, atol=1e-2)
    left, right, x, d = _t(ref.left), _t(ref.right), _t(img), _t(coc)
    loss = DPReblurLoss(psfs, border=4)
    true = float(loss(x, d, left, right))
    assert true < 1e-5
    for name, xx, dd in [("zero map", x, torch.zeros_like(d)), ("centre view at d=0", _t(ref.centre), torch.zeros_like(d)),
                         ("flipped sign", x, -d)]:
        other = float(loss(xx, dd, left, right))
        assert other > 100 * true and other > 1e-3, (name, true, other)


# (f) bfloat16 autocast ---------------------------------------------------------------------------
def test_bf16_autocast_close_to_fp32():
    img, coc = _scene(32, 40, seed=2)
    psfs = ReblurPSFs.from_model(np.arange(-3.0, 5.0))
    ref = render_coc_layers(img.astype(np.float32), coc)
    left, right = _t(ref.left), _t(ref.right)
    conv = torch.nn.Conv2d(1, 1, 1, bias=False)
    torch.nn.init.ones_(conv.weight)
    x = _t(img).requires_grad_(True)
    fp32 = reblur_loss(conv(x), _t(coc) * 0.8, left, right, psfs)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = conv(x)
        assert y.dtype == torch.bfloat16
        views = dp_reblur(y, _t(coc), psfs)
        bf16 = reblur_loss(y, _t(coc) * 0.8, left, right, psfs)
    assert views[0].dtype == torch.float32 and bf16.dtype == torch.float32
    np.testing.assert_allclose(views[0][0, 0].detach().numpy(), ref.left, rtol=0, atol=1e-2)  # x rounded to 8 bits
    assert abs(float(bf16.detach()) - float(fp32.detach())) < 0.02 * float(fp32.detach())
    bf16.backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_summed_layers_keep_the_light_of_a_continuous_map():
    """A flat image under a map between the levels: summed layers (occlusion=False) give it back in the
    interior, as every kernel sums to 1; the front-to-back occlusion of two partial layers of one pixel
    darkens it (documented: the renderer's occlusion model is defined for maps on the levels)."""
    import torch

    from learned.training.reblur import ReblurPSFs, dp_reblur

    psfs = ReblurPSFs.from_model([1.0, 2.0, 3.0, 4.0], "half_disc")
    x = torch.full((1, 1, 48, 48), 0.5, dtype=torch.float64)
    d = torch.full((1, 1, 48, 48), 2.5, dtype=torch.float64)  # halfway between two levels everywhere
    inner = (..., slice(8, -8), slice(8, -8))
    for view in dp_reblur(x, d, psfs, occlusion=False):
        assert torch.allclose(view[inner], torch.full_like(view[inner], 0.5), atol=1e-9)
    on_level = torch.full_like(d, 2.0)
    for view in dp_reblur(x, on_level, psfs, occlusion=True):
        assert torch.allclose(view[inner], torch.full_like(view[inner], 0.5), atol=1e-9)
    dark = dp_reblur(x, d, psfs, occlusion=True)[0][inner].mean()
    assert dark < 0.49  # measured 0.375: the two halves composited as if one hid the other
