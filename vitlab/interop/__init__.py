"""Weights and models for and from other libraries: HF transformers, timm, ONNX (docs/interop.md)."""
from .files import (FORMATS, Imported, detect_format, export_model, export_weights, hf_config, hf_image_processor,
                    import_model, import_source, import_weights, infer_config, source_config, weights_file)
from .hf import config_from_hf, from_hf, to_hf
from .onnx import export_onnx, read_onnx_meta
from .timm import config_from_timm_args, from_timm, timm_args, to_timm

__all__ = ["FORMATS", "Imported", "config_from_hf", "config_from_timm_args", "detect_format", "export_model", "export_onnx",
           "export_weights", "from_hf", "from_timm", "hf_config", "hf_image_processor", "import_model",
           "import_source", "import_weights", "infer_config", "read_onnx_meta", "source_config", "timm_args", "to_hf",
           "to_timm", "weights_file"]
