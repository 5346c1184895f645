"""``chromalab serve``: a local, offline web page for colorizing photos (see docs/web.md)."""

from chromalab.web.app import create_app

__all__ = ["create_app"]
