"""Training losses: pixel (L1/L2/Huber), perceptual and adversarial."""

from chromalab.losses.pixel import PIXEL_LOSSES, make_pixel_loss

__all__ = ["PIXEL_LOSSES", "make_pixel_loss"]
