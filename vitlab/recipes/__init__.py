"""Configuration as code: each recipe is a function returning a RunConfig, its docstring the command and the
result measured with it (on the validation split; the test split reported once, at the end).

Recipes are grouped by task: ``vitlab train --task pretrain --recipe fashion-mnist`` is the pretraining recipe
of that name. Without ``--task``, ``--recipe NAME`` means the classification recipe NAME if there is one, else
the one task's recipe of that name (``--recipe segment``); without either, each task has a default.
"""
from ..config import RunConfig
from ..errors import ConfigError
from .cifar10 import cifar10
from .digits import digits
from .finetune import finetune_schedule, from_source
from .from_data import fit_to_data
from .mnist import fashion_mnist, fashion_mnist_vit, mnist
from .pretrain_digits import pretrain_digits
from .pretrain_fashion_mnist import pretrain_fashion_mnist
from .segment import segment

RECIPES = {
    "classify": {"digits": digits, "mnist": mnist, "fashion-mnist": fashion_mnist, "fashion-mnist-vit": fashion_mnist_vit,
                 "cifar10": cifar10},
    "segment": {"segment": segment},
    "pretrain": {"digits": pretrain_digits, "fashion-mnist": pretrain_fashion_mnist},
}
DEFAULT_RECIPES = {"classify": "digits", "segment": "segment", "pretrain": "digits"}


def recipe(name: str | None = None, task: str | None = None) -> RunConfig:
    """The recipe ``name`` of ``task`` (module docstring for the defaults)."""
    if task is not None and task not in RECIPES:
        raise ConfigError(f"task={task!r} is not one of {tuple(RECIPES)}")
    if task is None:
        if name is None or name in RECIPES["classify"]:
            task = "classify"
        else:
            owners = [t for t, recipes in RECIPES.items() if name in recipes]
            if not owners:
                raise ConfigError(f"unknown recipe {name!r}; the recipes are "
                                  f"{', '.join(f'{t}: {sorted(r)}' for t, r in RECIPES.items())}")
            task = owners[0]
    name = name or DEFAULT_RECIPES[task]
    if name not in RECIPES[task]:
        raise ConfigError(f"unknown recipe {name!r} for task={task!r}; expected one of {sorted(RECIPES[task])}")
    return RECIPES[task][name]()


__all__ = ["DEFAULT_RECIPES", "RECIPES", "cifar10", "digits", "fashion_mnist", "fashion_mnist_vit", "finetune_schedule",
           "fit_to_data", "from_source", "mnist", "pretrain_digits", "pretrain_fashion_mnist", "recipe", "segment"]
