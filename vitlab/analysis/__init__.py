"""Analysis tools that read a network's structure without training it."""
from .receptive_field import (GRAMMAR, KINDS, LayerSpec, format_table, from_module, parse_spec, receptive_field,
                              stem_grid, stem_specs)

__all__ = ["GRAMMAR", "KINDS", "LayerSpec", "format_table", "from_module", "parse_spec", "receptive_field",
           "stem_grid", "stem_specs"]
from .attention import (add_residual, attention_rollout, collect_attention, last_layer_attention,  # noqa: E402
                        mean_attention_distance, patch_distances, patch_embed_components, pos_embed_similarity)

__all__ += ["add_residual", "attention_rollout", "collect_attention", "last_layer_attention",
            "mean_attention_distance", "patch_distances", "patch_embed_components", "pos_embed_similarity"]
