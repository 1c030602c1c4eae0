"""Analysis tools that read a network's structure without training it."""
from .receptive_field import GRAMMAR, KINDS, LayerSpec, format_table, from_module, parse_spec, receptive_field

__all__ = ["GRAMMAR", "KINDS", "LayerSpec", "format_table", "from_module", "parse_spec", "receptive_field"]
