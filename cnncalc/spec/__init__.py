"""The spec: YAML with positions (`source`), expressions (`subst`), the pydantic models
(`schema`), and expansion of blocks, repeat and names into a `Network` (`expand`, `network`)."""
from __future__ import annotations

from cnncalc.spec.expand import load_spec, parse_spec
from cnncalc.spec.network import Network, Node
from cnncalc.spec.schema import parse_shape

__all__ = ["load_spec", "parse_spec", "Network", "Node", "parse_shape"]
