"""Configuration as code: each recipe is a function returning a RunConfig."""
from .digits import digits
from .mnist import fashion_mnist, mnist
from .segment import segment

RECIPES = {"digits": digits, "segment": segment, "mnist": mnist, "fashion-mnist": fashion_mnist}

__all__ = ["RECIPES", "digits", "fashion_mnist", "mnist", "segment"]
