"""Training: one loop for every task (loop.py), the task records (tasks/), checkpoints, run folders, torchrun."""
from ..errors import CheckpointError, TrainingDiverged, TrainingInterrupted, TrainingOutOfMemory
from .artifacts import load_model, load_segmenter, save_model
from .checkpoint import load_state_dict_file
from .loop import fit
from .run_dir import RESUMABLE_KEYS, load_run_config
from .schedule import warmup_cosine
from .tasks.classify import evaluate
from .tasks.segment import evaluate_segmentation

__all__ = ["RESUMABLE_KEYS", "CheckpointError", "TrainingDiverged", "TrainingInterrupted", "TrainingOutOfMemory",
           "evaluate", "evaluate_segmentation", "fit", "load_model", "load_run_config", "load_segmenter",
           "load_state_dict_file", "save_model", "warmup_cosine"]
