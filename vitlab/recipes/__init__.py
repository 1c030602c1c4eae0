"""Configuration as code: each recipe is a function returning a RunConfig."""
from .digits import digits

RECIPES = {"digits": digits}

__all__ = ["RECIPES", "digits"]
