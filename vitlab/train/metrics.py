"""Evaluation metrics worked out from counts: the segmentation confusion matrix, pixel accuracy and IoU, and the
similarity-weighted kNN vote that monitors contrastive pretraining.

From the confusion matrix C (rows: true class, columns: predicted), over every pixel:

* pixel accuracy = trace(C) / sum(C);
* IoU of class k = TP / (TP + FP + FN) = C[k,k] / (row_k + col_k - C[k,k]); mIoU is the mean
  over all classes *including background*. A class absent from both the target and the
  prediction (TP + FP + FN = 0) has no defined IoU and is left out of the mean, rather than
  counted as 1 (which would reward never seeing it) or 0 (which would punish a correct "absent").
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(K, K) int64 counts, rows the true class, columns the predicted; pred and target any equal shape."""
    if pred.shape != target.shape:
        raise ValueError(f"pred shape {tuple(pred.shape)} != target shape {tuple(target.shape)}")
    k = target.reshape(-1).long() * num_classes + pred.reshape(-1).long()
    return torch.bincount(k, minlength=num_classes**2).reshape(num_classes, num_classes)


def pixel_accuracy(cm: torch.Tensor) -> float:
    return float(cm.diagonal().sum() / cm.sum().clamp_min(1))


def iou_per_class(cm: torch.Tensor) -> torch.Tensor:
    """(K,) IoU = TP / (TP + FP + FN), NaN for a class absent from both target and prediction."""
    tp = cm.diagonal().double()
    union = cm.sum(0).double() + cm.sum(1).double() - tp  # TP + FP + FN
    return torch.where(union > 0, tp / union.clamp_min(1), torch.full_like(tp, float("nan")))


def mean_iou(cm: torch.Tensor) -> float:
    """Mean IoU over the classes present in the target or the prediction (background included)."""
    iou = iou_per_class(cm)
    present = ~torch.isnan(iou)
    return float(iou[present].mean()) if present.any() else float("nan")


def knn_predict(bank: torch.Tensor, bank_labels: torch.Tensor, queries: torch.Tensor, k: int,
                num_classes: int) -> torch.Tensor:
    """Similarity-weighted k-nearest-neighbour vote on cosine similarity (Wu et al. 2018, "Unsupervised
    Feature Learning via Non-Parametric Instance Discrimination", §3.4, with weights s rather than exp(s/τ)).

    Each query's k most similar bank rows (cosine similarity of L2-normalised features) vote for their label
    with weight equal to their similarity; the class with the largest total wins (ties: the lowest class).

    Shape:
        bank: (M, D), bank_labels: (M,), queries: (Q, D) -> (Q,) predicted labels.
    """
    bank = F.normalize(bank.float(), dim=1)
    preds = []
    with torch.autocast(bank.device.type, enabled=False):  # fp32 similarities under a run's bf16 autocast too
        for q in F.normalize(queries.float(), dim=1).split(1024):  # (1024, M) similarities at a time, not (Q, M)
            top_sim, top_idx = (q @ bank.T).topk(min(k, bank.shape[0]), dim=1)  # (q, k)
            votes = torch.zeros(q.shape[0], num_classes, device=q.device)
            votes.scatter_add_(1, bank_labels[top_idx], top_sim)  # (q, C)
            preds.append(votes.argmax(1))
    return torch.cat(preds) if preds else torch.zeros(0, dtype=torch.long, device=bank.device)
