"""Point-spread-function models: the Gaussian and disc PSFs (:mod:`.shapes`) and the thin-lens
camera that maps depth to a signed circle of confusion (:mod:`.thin_lens`)."""

from .shapes import disc_psf, gaussian_psf
from .thin_lens import Camera, depth_from_signed_coc, signed_coc_radius
