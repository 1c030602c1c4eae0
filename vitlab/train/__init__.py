from .artifacts import load_model, save_model
from .checkpoint import CheckpointError, load_state_dict_file
from .loop import (RESUMABLE_KEYS, TrainingDiverged, TrainingInterrupted, TrainingOutOfMemory, evaluate, fit,
                   load_run_config)
from .schedule import warmup_cosine

__all__ = ["RESUMABLE_KEYS", "CheckpointError", "TrainingDiverged", "TrainingInterrupted", "TrainingOutOfMemory",
           "evaluate", "fit", "load_model", "load_run_config", "load_state_dict_file", "save_model", "warmup_cosine"]
