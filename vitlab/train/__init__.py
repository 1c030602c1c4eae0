from .artifacts import load_model, save_model
from .checkpoint import CheckpointError
from .loop import RESUMABLE_KEYS, TrainingDiverged, evaluate, fit, load_run_config
from .schedule import warmup_cosine

__all__ = ["RESUMABLE_KEYS", "CheckpointError", "TrainingDiverged", "evaluate", "fit", "load_model", "load_run_config", "save_model",
           "warmup_cosine"]
