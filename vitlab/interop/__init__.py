from .hf import config_from_hf, from_hf, to_hf

__all__ = ["config_from_hf", "from_hf", "to_hf"]
