"""Building blocks, one a file; the models import them from here."""
from .attention import Attention
from .block import Block
from .drop_path import DropPath
from .init import INIT_SCHEMES, init_weights
from .mlp import MLP
from .norm import NORMS, TokenBatchNorm, make_norm
from .patch_embed import PatchEmbed
from .pos_embed import resample_pos_embed
from .stems import STEMS, ConvStem, build_stem
from .upsample import Upsample2x

__all__ = ["Attention", "Block", "ConvStem", "DropPath", "INIT_SCHEMES", "MLP", "NORMS", "PatchEmbed", "STEMS",
           "TokenBatchNorm", "build_stem", "init_weights", "make_norm", "resample_pos_embed", "Upsample2x"]
