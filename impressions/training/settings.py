"""Training settings (workflow-wide and per family), the device, and seeding."""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

import numpy as np
import torch

from impressions.expressions import au_maps

WORKFLOW_WIDE = {"scope": "workflow"}
"""Field metadata of the workflow-wide settings: set once in the config's `models` section for every
family. Every other `Settings` field is a per-family training key (`train_keys`)."""


@dataclass
class Settings:
    """Training settings: workflow-wide ones (seed, device...) and one family's (epochs, lr...)."""

    seed: int = field(default=0, metadata=WORKFLOW_WIDE)
    device: str = field(default="auto", metadata=WORKFLOW_WIDE)
    amp: bool = field(default=True, metadata=WORKFLOW_WIDE)
    num_workers: int = field(default=0, metadata=WORKFLOW_WIDE)
    # official or identity: impressions.data.splits (seeded by seed)
    split: str = field(default="official", metadata=WORKFLOW_WIDE)
    threads: int = field(default=0, metadata=WORKFLOW_WIDE)  # torch CPU threads; 0 leaves torch's default
    epochs: int = 10
    batch_size: int = 32
    eval_batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4  # adamw: decoupled decay; sgd: L2 added to the gradient
    # adamw (torch AdamW) or sgd (torch SGD: `momentum`, `dampening`, `weight_decay` as L2), the
    # published solvers: DAN+ (MatConvNet cnn_train_dag: momentum 0.9, L2 5e-4; METHODS 2.3) and
    # Zhang et al.'s audio regressor (Torch7 optim.sgd: momentum 0.9, weightDecay 6.5; METHODS 3.1)
    optimizer: str = "adamw"
    momentum: float = 0.9  # sgd only
    # sgd only: torch's default 0; Torch7's optim.sgd defaults it to the momentum (optim/sgd.lua)
    dampening: float = 0.0
    # constant; step: lr * lr_gamma every lr_step_epochs epochs (DAN+'s logspace(-3,-6,30) per epoch
    # is step 1, gamma 10^(-3/29); METHODS 2.3); inverse_time: lr / (1 + lr_decay * batches seen)
    # after each batch (Torch7 optim.sgd's learningRateDecay; METHODS 3.1)
    lr_schedule: str = "constant"
    lr_step_epochs: int = 1
    lr_gamma: float = 0.1
    lr_decay: float = 0.0
    patience: int = 5  # epochs without a better validation accuracy before stopping
    loss: str = "mse"  # mse, l1 (the challenge metric is an L1 error) or l2dist (DAN+'s Euclidean loss)
    input_size: int | None = None  # images are resized to this side on the device
    augment: bool = True  # random horizontal flips of training images
    alphas: list[float] = field(default_factory=lambda: [0.1, 1.0, 10.0, 100.0, 1000.0])  # au_linear
    inputs: list[str] = field(default_factory=lambda: ["image", "face", "audio"])  # fusion components
    au_guidance_weight: float = 0.0  # image / face: weight of the attention-to-AU-map term (0: off)
    # init: the term is multiplied by trait loss / guidance term on the first batch (at initialisation),
    # so weight 1 weighs it like the trait loss when training starts; none: the raw term.
    au_guidance_scale: str = "init"
    # how the AU maps guidance trains toward are drawn (impressions.expressions.au_maps.SHAPES); the
    # guided variants take interpret.au_map, so they train toward the maps the analyses compare with
    au_map: str = au_maps.SHAPE
    # the body module whose output attention AU guidance trains (a list index into the model's body):
    # -1 is the last feature map (pool5 level, 7 x 7 at 224 px); Belharbi et al. guide a 28 x 28 map
    au_guidance_layer: int = -1
    # fusion: fit on held-out component outputs (val, cross-fitted in `folds` group folds) or, leaky and
    # for comparison only, on the training split's (impressions.training.fusion)
    fit_on: str = "heldout"
    folds: int = 5
    # audio (waveform): train on random crops of this many seconds and score whole clips (their real
    # samples); None trains and scores on the stored window as is (the thesis's first 5 s)
    crop_seconds: float | None = None

    @classmethod
    def from_options(cls, common: Mapping, family_options: Mapping) -> tuple[Settings, dict]:
        """(training settings, builder options) from the config's `models` section and a family's keys.

        A family's key is a training setting when it names a per-family field (`train_keys`), else a
        builder option; a workflow-wide field among a family's keys is a builder option too."""
        known = {f.name for f in fields(cls)}
        keys = train_keys(cls)
        train = {k: v for k, v in family_options.items() if k in keys}
        builder = {k: v for k, v in family_options.items() if k not in keys}
        return cls(**{k: v for k, v in common.items() if k in known}, **train), builder


def train_keys(cls: type = Settings) -> frozenset[str]:
    """The per-family training keys of a settings class: its fields but the workflow-wide ones."""
    return frozenset(f.name for f in fields(cls) if f.metadata.get("scope") != WORKFLOW_WIDE["scope"])


TRAIN_KEYS = train_keys(Settings)
"""Per-family config keys that configure training; every other key is a builder option."""


from impressions.devices import resolve_device  # noqa: E402, F401 - the one device rule (re-exported)


def seed_everything(seed: int, threads: int = 0) -> None:
    """Seed every generator and make torch pick deterministic kernels."""
    # cuBLAS needs this before its first call to be deterministic; harmless on a CPU.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    if threads:
        torch.set_num_threads(threads)


def _autocast(device: str, amp: bool):
    if device.startswith("cuda") and amp:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype), dtype == torch.float16
    return torch.autocast("cpu", enabled=False), False
