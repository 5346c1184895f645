"""Using trained models: full-resolution colorization of photos, folders (and, later, video)."""

from chromalab.inference.colorize import ColorizeReport, colorize_files
from chromalab.inference.colorizer import Colorizer

__all__ = ["ColorizeReport", "Colorizer", "colorize_files"]
