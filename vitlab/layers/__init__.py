"""Building blocks, one a file; the models import them from here."""
from .attention import Attention
from .block import Block
from .drop_path import DropPath
from .init import INIT_SCHEMES, init_weights
from .mlp import MLP
from .patch_embed import PatchEmbed
from .pos_embed import resample_pos_embed
from .upsample import Upsample2x

__all__ = ["Attention", "Block", "DropPath", "INIT_SCHEMES", "MLP", "PatchEmbed", "init_weights",
           "resample_pos_embed", "Upsample2x"]
