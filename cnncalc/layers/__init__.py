"""The layer vocabulary. Importing this package registers every layer type in REGISTRY."""
from cnncalc.layers import activation, attention, blur, conv, linear, merge, modern, norm, pool, reduce, reshape, scale, std_conv  # noqa: F401  (registration)
from cnncalc.layers.base import REGISTRY, Ctx, Layer, Saved, Shape, merged

__all__ = ["REGISTRY", "Ctx", "Layer", "Saved", "Shape", "merged"]
