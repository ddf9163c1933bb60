"""The torch device a job runs on: one rule for training, prediction, interpretation and expressions."""

from __future__ import annotations


def resolve_device(name: str = "auto") -> str:
    """ "auto" -> "cuda" when torch sees a GPU, else "cpu"; a named device is checked and returned.

    Asking for a GPU that torch cannot see is an error rather than a silent CPU run."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device: {name} was asked for, but torch sees no GPU (use auto or cpu)")
    return name
