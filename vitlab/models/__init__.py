from .vit import ViT, count_params, load_state_dict_resampled

__all__ = ["ViT", "count_params", "load_state_dict_resampled"]
