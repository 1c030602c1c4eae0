"""Optional dependencies: what each is for, and a one-line error naming the pip command when one is missing.

``pip install vitlab`` brings what training needs; the rest is an extra: ``vitlab[onnx]`` (onnx, onnxscript,
onnxruntime: ``vitlab export --onnx``), ``vitlab[hf]`` (transformers: HF folders), ``vitlab[timm]`` (timm, to
build the timm model an export describes), ``vitlab[tensorboard]`` (TensorBoard's event-file writer);
``vitlab[dev]`` pulls them all.
"""
from __future__ import annotations

import importlib

from .errors import MissingDependencyError

EXTRAS = {"onnx": ("onnx", "onnxscript", "onnxruntime"), "hf": ("transformers",), "timm": ("timm",),
          "tensorboard": ("tensorboard",)}


def require(module: str, extra: str, what: str = ""):
    """Import ``module`` or raise MissingDependencyError naming ``pip install 'vitlab[extra]'``."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        if getattr(e, "name", None) not in (module, module.split(".")[0]):
            raise  # the package is there but broken: its own error says why
        need = f" for {what}" if what else ""
        raise MissingDependencyError(f"{module} is needed{need} but is not installed: pip install "
                                     f"'vitlab[{extra}]' (or pip install {' '.join(EXTRAS[extra])})") from e
