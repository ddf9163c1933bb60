"""The fitting engine of the networks: input preparation, losses, the epoch loop and per-clip scoring."""

from __future__ import annotations

import copy
import logging
import time

import numpy as np
import torch
from torch import nn

from impressions import metrics
from impressions.expressions import au_maps
from impressions.models import transforms
from impressions.schemas import TRAITS
from impressions.training import datasets
from impressions.training.settings import Settings, _autocast

log = logging.getLogger(__name__)


class Prepare:
    """Turns a loader batch into model input on the device (images: to float, resize, flip)."""

    def __init__(self, kind: str, input_size=None, augment: bool = False, seed: int = 0):
        """`input_size`: the model's `ImageTransform` (impressions.models.transforms), or the side to
        resize to (None: as stored), for which the default transform is made."""
        transform = input_size if callable(input_size) else transforms.ImageTransform(input_size)
        self.kind, self.transform, self.augment = kind, transform, augment
        self.generator = torch.Generator().manual_seed(seed + 1)

    def __call__(self, x: torch.Tensor, device: str, train: bool, maps: torch.Tensor | None = None):
        """Model input; with `maps` (N, m, m) AU maps, (input, maps flipped with their images)."""
        x = x.to(device, non_blocking=True)
        if self.kind in ("frames", "faces"):
            flip = None
            if train and self.augment:
                flip = (torch.rand(x.shape[0], generator=self.generator) < 0.5).to(device)
            images = self.transform(x, flip)
            if maps is None:
                return images
            # A map covers the whole stored image, so mirroring the image mirrors its map.
            maps = maps.to(device, non_blocking=True).float()
            return images, maps if flip is None else torch.where(flip.view(-1, 1, 1), maps.flip(-1), maps)
        return x.float()


class EuclideanLoss(nn.Module):
    """Batch mean of the unsquared Euclidean distance of the 5-d error: DAN+'s ``pdist`` loss (p = 2,
    root taken; Zhang et al. 2016), whose solver divides the batch sum by the batch size."""

    def forward(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(((out - target) ** 2).sum(dim=1).clamp_min(1e-12)).mean()


def _loss_fn(name: str) -> nn.Module:
    if name not in ("mse", "l1", "l2dist"):
        raise ValueError(f"loss must be mse, l1 or l2dist, not {name!r}")
    return {"mse": nn.MSELoss, "l1": nn.L1Loss, "l2dist": EuclideanLoss}[name]()


OPTIMIZERS = ("adamw", "sgd")
LR_SCHEDULES = ("constant", "step", "inverse_time")


class Schedule:
    """The learning-rate schedule of `settings.lr_schedule`: `epoch_done` and `batch_done` advance it."""

    def __init__(self, optimizer: torch.optim.Optimizer, settings: Settings):
        name = settings.lr_schedule
        if name not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, not {name!r}")
        self.scheduler, self.per = None, name
        if name == "step":
            self.scheduler = torch.optim.lr_scheduler.StepLR(
                optimizer, step_size=settings.lr_step_epochs, gamma=settings.lr_gamma
            )
        elif name == "inverse_time":
            decay = float(settings.lr_decay)
            self.scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: 1.0 / (1.0 + decay * t))

    def batch_done(self) -> None:
        if self.per == "inverse_time":
            self.scheduler.step()

    def epoch_done(self) -> None:
        if self.per == "step":
            self.scheduler.step()


def make_optimizer(params, settings: Settings) -> tuple[torch.optim.Optimizer, Schedule]:
    """The optimizer of `settings.optimizer` (adamw or sgd) and its learning-rate schedule."""
    if settings.optimizer == "adamw":
        optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    elif settings.optimizer == "sgd":
        optimizer = torch.optim.SGD(
            params, lr=settings.lr, momentum=settings.momentum, dampening=settings.dampening,
            weight_decay=settings.weight_decay,
        )  # fmt: skip
    else:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {settings.optimizer!r}")
    return optimizer, Schedule(optimizer, settings)


@torch.no_grad()
def predict_clips(
    model: nn.Module, dataset, n_clips: int, prepare: Prepare, device: str, batch_size: int = 128,
    amp: bool = False, num_workers: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Per-clip mean scores (n_clips, 5) and penultimate features, NaN where a clip has no samples; counts.

    Each batch is added to per-clip sums at once, so memory is bounded by the batch and the clips
    (n_clips x feature width), not by the number of frames: FI's final pass is 600,000 frames."""
    model.eval()
    dim = getattr(model, "feature_dim", 1)
    score_sums = torch.zeros(n_clips, len(TRAITS), dtype=torch.float64)
    embed_sums: torch.Tensor | None = None
    counts = torch.zeros(n_clips, dtype=torch.int64)
    if len(dataset):
        batches = datasets.loader(
            dataset, batch_size, shuffle=False, seed=0, device=device, num_workers=num_workers
        )
        autocast, _ = _autocast(device, amp)
        for x, _, pos in batches:
            with autocast:
                # Every network family ends in embed -> (dropout) -> fc -> sigmoid; dropout is off in eval.
                emb = model.embed(prepare(x, device, train=False))
                out = torch.sigmoid(model.fc(emb))
            pos = pos.cpu()
            if embed_sums is None:
                embed_sums = torch.zeros(n_clips, emb.shape[1], dtype=torch.float64)
            datasets.add_to_clips(score_sums, counts, out.float(), pos)
            datasets.add_to_clips(embed_sums, None, emb.float(), pos)
    if embed_sums is None:
        nan = np.full((n_clips, len(TRAITS)), np.nan)
        return nan, np.full((n_clips, dim), np.nan, dtype=np.float32), counts.numpy()
    score = datasets.means_of(score_sums, counts)
    emb = datasets.means_of(embed_sums, counts)
    return score.numpy(), emb.numpy().astype(np.float32), counts.numpy()


def training_parts(model: nn.Module, train_set, settings: Settings, device: str):
    """What a training step needs, as `fit` sets it up (the model moved to `device`): (optimizer, lr
    schedule, loss, autocast context, grad scaler, the shuffled training loader)."""
    model.to(device)
    optimizer, schedule = make_optimizer(model.parameters(), settings)
    autocast, use_scaler = _autocast(device, settings.amp)
    batches = datasets.loader(
        train_set, settings.batch_size, shuffle=True, seed=settings.seed, device=device,
        num_workers=settings.num_workers,
    )  # fmt: skip
    scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
    return optimizer, schedule, _loss_fn(settings.loss), autocast, scaler, batches


def fit(
    model: nn.Module, train_set, val_set, val_clips: datasets.Clips, settings: Settings, prepare: Prepare,
    device: str,
) -> tuple[nn.Module, list[dict]]:  # fmt: skip
    """Train with `settings.optimizer` and its schedule (`make_optimizer`); keep the weights of the epoch
    with the best validation mean accuracy.

    With `settings.au_guidance_weight` > 0, `train_set` yields (x, y, position, AU map) (an
    `datasets.AUMapDataset`) and the loss adds weight * `au_maps.guidance_loss` on the model's
    feature maps of body module `settings.au_guidance_layer` (`model.forward_with_features`: one pass
    for both)."""
    from tqdm.auto import tqdm

    weight = float(settings.au_guidance_weight)
    guided = weight > 0
    if guided and not isinstance(train_set, datasets.AUMapDataset):
        raise ValueError("au_guidance_weight > 0 needs a training set with AU maps (datasets.AUMapDataset)")

    optimizer, schedule, criterion, autocast, scaler, batches = training_parts(
        model, train_set, settings, device
    )
    fill = metrics.train_mean(train_set.clips.labels)  # what clips without samples get, as in the end
    history: list[dict] = []
    best_acc, best_state, stale = -np.inf, None, 0
    scale = None  # the guidance term's normalisation, fixed on the first batch that has AU maps
    bar = tqdm(range(1, settings.epochs + 1), desc="epochs", unit="epoch", mininterval=5)
    for epoch in bar:
        start, lr = time.perf_counter(), optimizer.param_groups[0]["lr"]  # the epoch's (first batch's) lr
        step = _train_epoch(
            model, batches, prepare, device, optimizer, schedule, criterion, autocast, scaler, settings, scale
        )
        schedule.epoch_done()
        total, seen, guide_total, guide_seen, scale = step
        val_loss, acc = _validate(model, val_set, val_clips, prepare, device, settings, criterion, fill)
        guide = (
            {"guidance_loss": guide_total / guide_seen if guide_seen else float("nan"),
             "guidance_scale": float("nan") if scale is None else scale}
            if guided
            else {}
        )  # fmt: skip
        row = {"epoch": epoch, "train_loss": total / max(seen, 1), **guide, "val_loss": val_loss,
               **{f"val_{t}": float(a) for t, a in zip(TRAITS, acc)}, "val_mean": float(acc.mean()),
               "lr": lr, "seconds": time.perf_counter() - start}  # fmt: skip
        improved = row["val_mean"] > best_acc
        row["best"] = improved
        history.append(row)
        log.info(
            "epoch %d: train loss %.5f, val loss %.5f, val mean accuracy %.4f%s%s",
            *(epoch, row["train_loss"], val_loss, row["val_mean"], " (best)" if improved else ""),
            f", AU guidance loss {row['guidance_loss']:.4f}" if guided else "",
        )
        bar.set_postfix(train_loss=f"{row['train_loss']:.4f}", val_acc=f"{row['val_mean']:.4f}")
        if improved:
            best_acc, best_state, stale = row["val_mean"], copy.deepcopy(model.state_dict()), 0
        else:
            stale += 1
            if stale >= settings.patience:
                log.info("no better validation accuracy for %d epochs: stopping", stale)
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    return model, history


def _train_epoch(
    model, batches, prepare, device, optimizer, schedule, criterion, autocast, scaler, settings, scale
):
    """One pass over the training batches: (loss sum, samples, guidance sum, guided samples, scale).

    `scale` is the guidance term's normalisation, fixed on the first batch whose term is positive."""
    weight = float(settings.au_guidance_weight)
    guided = weight > 0
    model.train()
    total, seen = 0.0, 0
    guide_total, guide_seen = 0.0, 0
    for batch in batches:
        if guided:
            x, y, _, maps = batch
            (x, maps), y = prepare(x, device, train=True, maps=maps), y.to(device, non_blocking=True)
        else:
            x, y, _ = batch
            x, y = prepare(x, device, train=True), y.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            if guided:
                out, features = model.forward_with_features(x, layer=settings.au_guidance_layer)
            else:
                out = model(x)
        loss = criterion(out.float(), y)
        objective = loss
        if guided:
            guidance = au_maps.guidance_loss(features, maps)
            if scale is None and float(guidance.detach()) > 0:
                scale = (
                    float(loss.detach()) / float(guidance.detach())
                    if settings.au_guidance_scale == "init"
                    else 1.0
                )
            objective = loss + weight * (1.0 if scale is None else scale) * guidance
            n_guided = int(au_maps.has_target(maps).sum())
            guide_total += float(guidance.detach()) * n_guided
            guide_seen += n_guided
        scaler.scale(objective).backward()
        scaler.step(optimizer)
        scaler.update()
        schedule.batch_done()
        total += float(loss.detach()) * len(y)
        seen += len(y)
    return total, seen, guide_total, guide_seen, scale


def _validate(model, val_set, val_clips, prepare, device, settings, criterion, fill):
    """(validation loss on clips with samples, per-trait accuracy with `fill` for clips without)."""
    pred, _, counts = predict_clips(
        model, val_set, len(val_clips), prepare, device, settings.eval_batch_size, settings.amp,
        settings.num_workers,
    )  # fmt: skip
    has = counts > 0
    val_loss = (
        float(criterion(torch.from_numpy(pred[has]), torch.from_numpy(val_clips.labels[has]).double()))
        if has.any()
        else float("nan")
    )
    pred = np.where(has[:, None], pred, fill)
    return val_loss, metrics.accuracy(val_clips.labels, pred)
