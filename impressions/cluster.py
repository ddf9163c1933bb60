"""What the SLURM profile (profiles/slurm/config.yaml) asks the cluster for a training job.

One rule trains every model (rules/models.smk `train_model`), GPU and CPU families alike; the rule's
own resources say how many GPUs a job needs (`gpu`: `models.gpus` for a family with `gpu`, else 0).
The profile's resource expressions see a job's wildcards and attempt, not its resources, so it asks
these functions where a job goes: GPU jobs to ``$IMPRESSIONS_SLURM_GPU_PARTITION`` (else the default
partition ``$IMPRESSIONS_SLURM_PARTITION``) with a GPU of ``$IMPRESSIONS_SLURM_GPU_MODEL`` and more
memory, CPU jobs (the closed-form ridge families) where every other job goes, with their family's
memory. Nothing here is imported by training itself.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from impressions.models import registry, variants

PARTITION = "IMPRESSIONS_SLURM_PARTITION"
GPU_PARTITION = "IMPRESSIONS_SLURM_GPU_PARTITION"
GPU_MODEL = "IMPRESSIONS_SLURM_GPU_MODEL"
GPU_MEM_MB = 16000
"""Memory of a GPU training job's first attempt: data loader workers each hold a copy of the batch
pipeline (the rules' 8000 MB are sized for the demo)."""


def on_gpu(wildcards: Mapping) -> bool:
    """Whether a training job asks for GPUs: its model's family's `gpu`. The AU-guidance sweep's jobs
    (no `model` wildcard) train a CAM family: on a GPU when the CAM families are."""
    model = dict(wildcards.items()).get("model")
    if model is not None:
        return variants.gpu(model)
    return all(registry.get(f).gpu for f in registry.names(cam=True))


def partition(wildcards: Mapping) -> str:
    """``-p``: the GPU partition for a GPU job (else the default one), the default one otherwise; ""
    lets the plugin fall back to the cluster's default partition."""
    default = os.environ.get(PARTITION, "")
    return (os.environ.get(GPU_PARTITION) or default) if on_gpu(wildcards) else default


def gpu_model(wildcards: Mapping) -> str:
    """The GPU model of a GPU job (``sbatch --gpus=<model>:N``); "" for any GPU, and for a CPU job."""
    return os.environ.get(GPU_MODEL, "") if on_gpu(wildcards) else ""


def mem_mb(wildcards: Mapping, attempt: int) -> int:
    """A GPU job's memory, growing with each retry; a CPU job keeps its family's (`Family.mem_mb`)."""
    if on_gpu(wildcards):
        return GPU_MEM_MB * attempt
    return variants.parse(dict(wildcards.items())["model"]).family.mem_mb
