"""Configuration as code: each recipe is a function returning a RunConfig."""
from .digits import digits
from .mnist import fashion_mnist, mnist
from .pretrain_digits import pretrain_digits
from .pretrain_fashion_mnist import pretrain_fashion_mnist
from .segment import segment

RECIPES = {"digits": digits, "segment": segment, "mnist": mnist, "fashion-mnist": fashion_mnist}
PRETRAIN_RECIPES = {"digits": pretrain_digits, "fashion-mnist": pretrain_fashion_mnist}

__all__ = ["PRETRAIN_RECIPES", "RECIPES", "digits", "fashion_mnist", "mnist", "pretrain_digits", "pretrain_fashion_mnist",
           "segment"]
