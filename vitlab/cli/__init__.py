"""The ``vitlab`` command line: it builds configurations and calls the library, nothing more.

One module a group of subcommands: ``train`` (train, eval, sweep), ``inspection`` (predict, models, rf,
analyse), ``interop`` (export, import), ``pretrain`` (pretrain, probe, tau-report); ``common`` holds the
``--section.key VALUE`` overrides, ``main`` the parser and the entry point. ``python -m vitlab.cli`` runs it
too (what torchrun launches).
"""
from .common import CLIError, parse_overrides
from .main import build_parser, main

__all__ = ["CLIError", "build_parser", "main", "parse_overrides"]
