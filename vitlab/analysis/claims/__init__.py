"""`vitlab claims`: each claim of the study notes vitlab grew from, checked here, with a verdict and its evidence.

A claim is checked either *exactly* (a computation against an independent reference: PyTorch's own ops, a formula
worked by hand) or by a small seeded *experiment* (settings compared over seeds with Welch's t-test,
:mod:`.stats`). The checks live by topic:

=====================  ==============================================================
module                 claims
=====================  ==============================================================
``downsampling``       1 max vs average pooling on texture, 2 strided conv vs pooling,
                       11 receptive fields, 14 what down-sampling buys
``upsampling``         3 which up-sampling is best, 4 transposed conv = zero insertion
                       + conv, 5 max-unpooling
``embedding``          6 embedding = one-hot × weights, 13 learned vs pre-trained vs PCA
``norms``              7 BatchNorm columns, LayerNorm rows, 8 LN vs BN over batch sizes
``temperature``        9 τ and the hardest negatives, 12 softmax temperature limits
``variance``           10 kaiming_normal(fan_out) and signal variance
=====================  ==============================================================

:func:`run` checks them in order and writes the report (:mod:`.report`).
"""
from __future__ import annotations

import importlib
import logging
import time

from .claim import CAVEATS, FAILS, HOLDS, UNDECIDED, VERDICTS, Claim, Finding, Lab

log = logging.getLogger(__name__)

# (number, the notes' statement, module, function, kind)
_TABLE = [
    (1, "Max pooling keeps texture better than average pooling, and is cheap.",
     "downsampling", "claim1", "experiment"),
    (2, "A learnable stride-2 convolution down-samples better than pooling, at extra compute.",
     "downsampling", "claim2", "experiment"),
    (3, "Bilinear interpolation is the best up-sampling.", "upsampling", "claim3", "experiment"),
    (4, "A transposed convolution is zero insertion plus an ordinary convolution.", "upsampling", "claim4", "exact"),
    (5, "Max-unpooling puts each value back at its recorded position, zeros elsewhere.",
     "upsampling", "claim5", "exact"),
    (6, "An embedding layer is a one-hot vector times a weight matrix.", "embedding", "claim6", "exact"),
    (7, "BatchNorm normalises each feature over the batch (columns), LayerNorm each sample over its features "
        "(rows).", "norms", "claim7", "exact"),
    (8, "LayerNorm suits sequences; BatchNorm suffers with small batches; CV suits BN, NLP suits LN.",
     "norms", "claim8", "experiment"),
    (9, "A small τ concentrates the loss on the hardest negatives, a large τ weighs all alike, and contrastive "
        "learning is sensitive to τ.", "temperature", "claim9", "experiment"),
    (10, "kaiming_normal with mode fan_out keeps the signal's variance from vanishing or exploding.",
     "variance", "claim10", "experiment"),
    (11, "The receptive field grows with depth, kernel size and pooling, and with a smaller stride.",
     "downsampling", "claim11", "exact"),
    (12, "Softmax turns scores into a distribution; as the temperature goes to 0 it approaches the max, as it "
         "grows it approaches uniform.", "temperature", "claim12", "exact"),
    (13, "An embedding layer trained with the network slows convergence, so embeddings are often pre-trained; "
         "an embedding suits sparse one-hot data better than PCA.", "embedding", "claim13", "experiment"),
    (14, "Down-sampling reduces computation and over-fitting and enlarges the receptive field.",
     "downsampling", "claim14", "experiment"),
]


def _check(module: str, name: str):
    def check(lab: Lab) -> Finding:
        return getattr(importlib.import_module(f".{module}", __name__), name)(lab)

    check.__name__ = f"{module}.{name}"
    return check


CLAIMS: dict[int, Claim] = {n: Claim(n, statement, _check(module, fn), kind)
                            for n, statement, module, fn, kind in _TABLE}


def run(lab: Lab, only: list[int] | None = None) -> list[tuple[Claim, Finding, float]]:
    """Check the claims ``only`` (all by default) in order; return each with its finding and seconds taken."""
    numbers = sorted(CLAIMS) if not only else only
    unknown = [n for n in numbers if n not in CLAIMS]
    if unknown:
        raise ValueError(f"no claim {unknown[0]}; the claims are numbered 1..{len(CLAIMS)}")
    lab.out.mkdir(parents=True, exist_ok=True)
    results = []
    for n in numbers:
        claim = CLAIMS[n]
        log.info("claim %d: %s", n, claim.statement)
        start = time.perf_counter()
        finding = claim.check(lab)
        seconds = time.perf_counter() - start
        log.info("  -> %s (%.1f s): %s", finding.verdict, seconds, finding.why)
        results.append((claim, finding, seconds))
    return results


__all__ = ["CLAIMS", "Claim", "Finding", "Lab", "run", "HOLDS", "CAVEATS", "FAILS", "UNDECIDED", "VERDICTS"]
