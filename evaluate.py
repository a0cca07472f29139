"""Evaluate a trained model on the MNIST test set."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


@torch.inference_mode()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Log-probabilities `(N, 10)` for `images`, in eval mode, without tracking gradients."""
    model.eval()
    return torch.cat([model(batch) for batch in images.split(batch_size)])


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """Mean negative log-likelihood and accuracy in percent."""
    log_probs = predict(model, images)
    loss = F.nll_loss(log_probs, labels).item()
    # Count in integers: a float32 mean turns 9,940 of 10,000 into 99.39999%.
    accuracy = (log_probs.argmax(1) == labels).sum().item() * 100 / len(labels)
    return loss, accuracy
