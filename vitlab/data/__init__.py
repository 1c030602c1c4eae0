from .augment import Normalize, build_augment
from .cifar import load_cifar10
from .dataset import ImageSet, Splits
from .digits import load_digits_split
from .folder import load_folder
from .idx import load_idx_dir, read_idx
from .loader import batch_indices, epoch_order, num_batches
from .sources import SOURCES, load_data, parse_source
from .splits import carve_validation, stratified_split
from .store import DiskImageSet, read_batches

__all__ = ["DiskImageSet", "ImageSet", "Normalize", "SOURCES", "Splits", "batch_indices", "build_augment", "carve_validation",
           "epoch_order", "load_cifar10", "load_data", "load_digits_split", "load_folder", "load_idx_dir",
           "num_batches", "parse_source", "read_batches", "read_idx", "stratified_split"]
