"""How a model of this run differs from the published model its reproduction row stands beside.

Derived from what the model was trained with (its `summary.json`: family, builder options, training
settings, preprocessing) against what the paper states (`SETUPS`), never from hand-written notes:
the network, the backbone and its weights, the head, the input size, frames per clip, the optimiser,
the split, the AU source, the members of an average or a fusion, and a fusion's extra inputs. A field
the paper does not state ([NF] in METHODS.md) is left out of its setup and so never claimed.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from impressions.expressions.detector import SOURCES
from impressions.models import registry

_DAN_PLUS = {"backbone": "vgg16", "weights": "VGG-Face", "head": "dan_plus", "input_size": 224,
             "optimizer": "sgd", "split": "official"}  # fmt: skip
"""DAN+ as Zhang et al. released it (METHODS 2.2-2.3): VGG-Face, two-layer avg+max head, 224 px, SGD."""

SETUPS: dict[str, dict] = {
    "zhang2016_challenge": {"members": ("DAN+", "DAN", "ResNet", "log-filterbank audio"),
                            "split": "official"},
    "ventura2017_img_audio_100": {"members": ("DAN+ image", "log-filterbank audio"),
                                  "member_families": ("image", "audio_fbank"), "frames": 100,
                                  "split": "official"},
    "ventura2017_img_10": {**_DAN_PLUS, "frames": 10, "looks_at": "frames"},
    "ventura2017_face": {**_DAN_PLUS, "looks_at": "faces"},
    # The AU tool is not named (METHODS 1.2): the row always says which one fed this run.
    "ventura2017_au17": {"au_source": None, "split": "official"},
    "dcc2016_audiovisual": {"split": "official"},
    "thesis_audio": {"audio_seconds": 5.0, "network": "3 dense layers on the raw waveform"},
    "thesis_visual": {"backbone": "vgg16", "weights": "VGG-Face", "input_size": 224, "looks_at": "faces"},
    "thesis_audio_visual": {"members": ("VGG-Face visual", "audio"), "member_families": ("face", "audio")},
    "thesis_av_handcrafted": {"members": ("VGG-Face visual", "audio"), "member_families": ("face", "audio"),
                              "extras": ("age", "gender", "emotions")},
}  # fmt: skip
"""What each published row's model was, where the paper says (keys of reproduction.PUBLISHED)."""


def weights_label(weights) -> str:
    """A backbone's weights as a reader names them: random init, ImageNet, VGG-Face or the file."""
    if not weights:
        return "random init"
    text = str(weights)
    if "imagenet" in text.lower():
        return "ImageNet"
    if "vgg_face" in text.lower() or "vggface" in text.lower():
        return "VGG-Face"
    return Path(text).name


def extras(family: str) -> tuple[str, ...]:
    """The inputs a fusion family adds to its members' features, by its registry inputs."""
    spec = registry.get(family)
    if spec.trainer != "fusion":
        return ()
    added = ("age", "gender", "emotions") if "au_table" in spec.inputs else ()
    return added + (("14 voice descriptors",) if "voice_table" in spec.inputs else ())


def expression_sources(summary: Mapping) -> dict[str, str]:
    """Where a model's AUs and emotions came from (`detector.SOURCES` of its run's expressions backend);
    empty for a model that reads no expressions."""
    spec = registry.FAMILIES.get(summary.get("family", ""))
    backend = ((summary.get("preprocessing") or {}).get("expressions") or {}).get("backend")
    if spec is None or not spec.needs_expressions or backend is None:
        return {}
    return SOURCES.get(backend, {"aus": backend, "emotions": backend})


def expression_note(summary: Mapping) -> str:
    """'AUs: ...; emotions: ...' for a model that reads the expressions table, else ''."""
    sources = expression_sources(summary)
    return f"AUs: {sources['aus']}; emotions: {sources['emotions']}" if sources else ""


def run_emotion_source(summaries) -> str:
    """The emotions' source of this run's expressions backend, from any model summary that records
    the run's preprocessing ('' when none does)."""
    for summary in summaries:
        backend = ((summary.get("preprocessing") or {}).get("expressions") or {}).get("backend")
        if backend:
            return SOURCES.get(backend, {}).get("emotions", backend)
    return ""


def run_setup(summary: Mapping) -> dict:
    """The same fields as `SETUPS`, for a trained model of this run (from its summary.json)."""
    family = summary.get("family", "")
    options, settings = summary.get("options") or {}, summary.get("settings") or {}
    prep = summary.get("preprocessing") or {}
    spec = registry.FAMILIES.get(family)
    if spec is None:
        return {}
    sources = expression_sources(summary)
    networked = "backbone" in options  # an image network: its backbone, weights and input size
    audio = spec.kind in ("waveform", "logfbank")
    return {
        "backbone": options.get("backbone"),
        "weights": weights_label(options.get("weights")) if networked else None,
        "head": options.get("head"),
        "input_size": summary.get("input_size") if networked else None,
        "frames": (prep.get("frames") or {}).get("per_clip"),
        "optimizer": settings.get("optimizer", "adamw") if spec.trainer == "samples" else None,
        "split": settings.get("split"),
        "au_source": sources.get("aus"),
        "emotion_source": sources.get("emotions") if "emotions" in extras(family) else None,
        "audio_seconds": (prep.get("audio") or {}).get("seconds") if audio else None,
        "looks_at": spec.sample_kind if spec.sample_kind in registry.IMAGE_KINDS else None,
        "members": tuple(summary.get("inputs") or settings.get("inputs") or ())
        if spec.trainer in ("fusion", "average") else (),
        "extras": extras(family),
        "network": spec.doc if audio else None,  # where it is not a backbone and head: the family's own
    }  # fmt: skip


def _listed(values) -> str:
    return ", ".join(values) if values else "none"


def differences(published: str, summary: Mapping) -> list[str]:
    """How the model of `summary` differs from the published row `published`, one phrase per field."""
    paper = SETUPS.get(published)
    if paper is None or not summary:
        return []
    run = run_setup(summary)
    if not run:
        return []
    out = []
    for field in ("network", "backbone", "weights", "head", "input_size", "frames", "optimizer", "split",
                  "audio_seconds", "looks_at"):  # fmt: skip
        if field in paper and run.get(field) is not None and run[field] != paper[field]:
            out.append(f"{field.replace('_', ' ')} {run[field]} (paper: {paper[field]})")
    if "au_source" in paper and run["au_source"] is not None:
        out.append(f"AUs from {run['au_source']} (paper: tool not named; OpenFace's intensity set has 17)")
    if "members" in paper and tuple(paper.get("member_families", ())) != run["members"]:
        out.append(f"members {_listed(run['members'])} (paper: {_listed(paper['members'])})")
    if run["extras"] != tuple(paper.get("extras", ())) and (run["extras"] or "extras" in paper):
        out.append(f"extra inputs {_listed(run['extras'])} (paper: {_listed(paper.get('extras', ()))})")
    if run.get("emotion_source"):
        out.append(f"emotions from {run['emotion_source']}")
    return out
