from .shapes import Point

__all__ = ["Point"]
