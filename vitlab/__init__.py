"""vitlab: Vision Transformers end to end."""
from .config import DataConfig, ModelConfig, OptimConfig, RunConfig, SIZES, size_config
from .models import ViT, count_params, load_state_dict_resampled

__version__ = "0.1.0"
__all__ = ["DataConfig", "ModelConfig", "OptimConfig", "RunConfig", "SIZES", "ViT", "count_params",
           "load_state_dict_resampled", "size_config"]
from .losses import InfoNCE, alignment, info_nce, negative_weights, uniformity  # noqa: E402

__all__ += ["InfoNCE", "alignment", "info_nce", "negative_weights", "uniformity"]
