"""Configuration as code: each recipe is a function returning a RunConfig."""
from .digits import digits
from .segment import segment

RECIPES = {"digits": digits, "segment": segment}

__all__ = ["RECIPES", "digits", "segment"]
