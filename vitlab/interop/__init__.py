from .files import FORMATS, detect_format, export_weights, hf_config, import_weights, infer_config
from .hf import config_from_hf, from_hf, to_hf
from .onnx import export_onnx
from .timm import from_timm, to_timm

__all__ = ["FORMATS", "config_from_hf", "detect_format", "export_onnx", "export_weights", "from_hf", "from_timm",
           "hf_config", "import_weights", "infer_config", "to_hf", "to_timm"]
