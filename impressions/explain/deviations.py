"""Where an analysis, as this run configured it, departs from the published method: the list each
report section prints, built from the settings the run used (so a changed setting changes the list).

Each function returns plain sentences, one per deviation; `text` joins them for a section. The
fixed departures (no setting changes them yet) are listed too, so that a reader never has to know
the code to know what was computed.
"""

from __future__ import annotations

from collections.abc import Iterable


def text(items: Iterable[str]) -> str:
    """The sentence a section prints: its deviations numbered, or that there is none."""
    items = list(items)
    if not items:
        return "Deviations from the published method: none under this run's settings."
    listed = "; ".join(f"({k}) {item}" for k, item in enumerate(items, 1))
    return f"Deviations from the published method, from this run's settings: {listed}."


def cam_overlap(rule: str, head, threshold: float) -> list[str]:
    """Ventura et al.'s face-overlap test with CAM regions by `rule` on a model with `head`."""
    out = []
    if rule == "min_max":
        out.append(
            f"CAM regions min-max normalised before the {threshold:g} threshold (interpret.cam_overlap."
            f"region_rule: min_max; Zhou et al. 2016 keep pixels >= {threshold:g} x the raw maximum)"
        )
    if head != "cam":
        out.append(f"the model's head is {head!r}, not the GAP (cam) head CAM is defined on")
    out.append("the face detector is dlib's HOG (the paper does not state its detector)")
    return out


def units(segmentation: str) -> list[str]:
    """Units as detectors (Zhou et al. 2015) and AU emergence (Ventura et al. 2017)."""
    return [
        f"top images segmented by {segmentation} (the upsampled activation map at half its maximum), not "
        "Zhou et al.'s occlusion-based empirical receptive field",
        "face parts come from 68 landmarks, not from annotators' segmentations",
        "AU emergence leaves out units and AUs with fewer positive values than the top-N set (ties)",
    ]


def guidance(au_map: str, normalised: bool | None, layers: Iterable[int] = ()) -> list[str]:
    """AU maps and the AU-guidance term against Belharbi et al. 2024 (METHODS 7.2-7.5): `au_map` the
    shape the maps were drawn in (interpret.au_map, `au_maps.SHAPES`), `normalised` whether the term
    was scaled at initialisation (models.<family>.au_guidance_scale: init; None when unknown), `layers`
    the guided body modules of the guided models in view (models.<family>.au_guidance_layer)."""
    from impressions.expressions import au_maps

    if au_map == "gaussian":
        drawn = (
            f"AU maps are Gaussian blobs (sigma {au_maps.SIGMA:g} x the inter-ocular distance) at this "
            "project's landmark anchors, not Belharbi et al.'s filled ellipses at theirs (interpret.au_map: "
            "gaussian)"
        )
    elif au_map == "ellipse":
        drawn = (
            "AU maps are Belharbi et al.'s filled ellipses at their anchors, with their sizes scaled to the "
            f"face (image fractions of a face crop {au_maps.CROP_SIDE:.2f} inter-ocular distances wide, "
            f"pixels of a {au_maps.CROP_PIXELS}-px crop) and without their 28 x 28 box blur"
        )
    else:
        raise ValueError(f"unknown AU map shape {au_map!r}; known: {list(au_maps.SHAPES)}")
    out = [drawn]
    for layer in dict.fromkeys(layers):
        out.append(
            "the guided layer is the last feature map of the body (pool5 level, 7 x 7 at 224 px; "
            "au_guidance_layer -1), not Belharbi et al.'s 28 x 28 map (ResNet-50 layer 5)"
            if layer == -1
            else f"the guided layer is body module {layer} (au_guidance_layer {layer}) of this project's "
            "network, not Belharbi et al.'s 28 x 28 map of ResNet-50 layer 5"
        )
    out += [
        "the term is 2 (1 - cosine) on the channel mean of squared activations, not 1 - cosine on the "
        "channel mean of activations",
        "CAM-AU similarity is reported as Pearson r and as cosine (CAM-COS) of the min-max normalised CAM",
    ]
    if normalised:
        out.append(
            "the term is scaled at initialisation (au_guidance_scale: init), so the weight is relative; "
            "the paper uses a raw weight (0.01-20)"
        )
    return out
