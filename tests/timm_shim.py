"""Test-only: import timm (the reference implementation of the timm tests) where torchvision cannot be imported.

Why: timm imports torchvision at import time (its data pipeline, `timm.layers.create_norm`'s FrozenBatchNorm2d,
the transforms' InterpolationMode), but its VisionTransformer never calls it. This project's CPU torch build has
no torchvision that imports beside it (the registry's fails with "operator torchvision::nms does not exist"), so
the tests install the package with `pip install --no-deps timm` and, when `import torchvision` fails, give timm
stand-ins for exactly the torchvision modules its import chain touches. A stand-in is a class that can be
imported, subclassed and have attributes looked up; calling one is an error, so nothing can silently use it.
Where a real torchvision imports, it is used and this shim does nothing.
"""
from __future__ import annotations

import sys
import types

# the torchvision modules timm 1.0's `import timm` reaches (found by importing it with none present)
MODULES = ("torchvision", "torchvision.datasets", "torchvision.models", "torchvision.models.feature_extraction",
           "torchvision.ops", "torchvision.ops.misc", "torchvision.transforms", "torchvision.transforms.functional",
           "torchvision.utils")


class _StandInMeta(type):
    def __getattr__(cls, name):  # e.g. InterpolationMode.BICUBIC
        if name.startswith("__"):
            raise AttributeError(name)
        return _stand_in(f"{cls.__qualname__}.{name}")


def _refuse(self, *args, **kwargs):
    raise RuntimeError(f"{type(self).__qualname__} is a test stand-in for torchvision (tests/timm_shim.py): "
                       f"timm's ViT must not need it")


def _stand_in(name: str) -> type:
    return _StandInMeta(name, (), {"__init__": _refuse, "__call__": _refuse})


class _StandInModule(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _stand_in(f"{self.__name__}.{name}")


def import_timm():
    """The timm module, or None when timm is not installed (the caller skips, saying why)."""
    try:
        import timm  # noqa: F401  a working torchvision, or none needed
        return timm
    except ModuleNotFoundError as e:
        if e.name == "timm":
            return None
    except (ImportError, RuntimeError):  # torchvision present but broken: "operator torchvision::nms ..."
        pass
    for name in [m for m in sys.modules if m == "timm" or m.startswith(("timm.", "torchvision"))]:
        del sys.modules[name]
    for name in MODULES:
        module = _StandInModule(name)
        module.__path__ = []  # a package, so that submodules import
        sys.modules[name] = module
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, module)
    import timm

    return timm
