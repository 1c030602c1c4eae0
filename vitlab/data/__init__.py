from .augment import Normalize, build_augment
from .dataset import ImageSet
from .digits import load_digits_split
from .loader import batch_indices, epoch_order, num_batches
from .sources import SOURCES, load_data

__all__ = ["ImageSet", "Normalize", "SOURCES", "batch_indices", "build_augment", "epoch_order", "load_data",
           "load_digits_split", "num_batches"]
