"""py-feat 2.1.5 weight files in their real formats and shapes, with random values (tests only).

Each file is what `Detectorv1(face_model="retinaface", landmark_model="mobilefacenet", au_model="xgb",
emotion_model="resmasknet")` reads, made from py-feat's own model classes so every tensor has the
shape py-feat's loader checks, and laid out as a Hugging Face cache (`models--<org>--<repo>/snapshots/
<revision>/<file>` with `refs/main`), which `hf_hub_download` resolves offline:

- py-feat/retinaface_r34/model.safetensors: the RetinaFace-R34 state dict (safetensors);
- py-feat/mobilefacenet/mobilefacenet_model_best.pth.tar: `torch.save({"state_dict": ...})`;
- py-feat/xgb_au/xgb_au_classifier_v2.skops: a skops dump of py-feat's `XGBClassifier` wrapper holding
  StandardScaler + PCA pairs (upper, lower, full face HOG) and one xgboost classifier per AU;
- py-feat/resmasknet/config.json and ResMaskNet_Z_resmasking_dropout1_rot30.pth (`{"net": ...}`).

The values are random, so what the detector outputs means nothing: these files prove loading,
batching and column mapping, not accuracy. Two parts are set rather than random, so that py-feat's
geometry gets a plausible face instead of a degenerate one: RetinaFace finds exactly one centred face
box in a 224 px image (random heads score hundreds of anchors as faces), and MobileFaceNet's output
is a mean face (our template) with a tiny jitter (random landmarks make py-feat's face alignment
singular and its face-mask convex hull fail).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

REVISION = "0" * 40
HOG_FEATURES = 5408  # py-feat's HOG of the 112 px aligned face: 13 x 13 blocks x 2 x 2 cells x 8 bins


def _place(root: Path, repo: str, name: str) -> Path:
    """The snapshot path of `repo/name` in a hub cache at `root` (refs/main written)."""
    folder = root / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text(REVISION)
    path = folder / "snapshots" / REVISION / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


FACE_BOX = 0.8
"""Side of the one face box the synthetic RetinaFace returns, as a fraction of a 224 px crop."""


def _retinaface(root: Path) -> None:
    """Weights that find exactly one face, a centred box, in any 224 px image.

    Random weights score hundreds of anchors as faces, and every later stage then runs on each.
    Here only the stride-32 level can score: its lateral conv outputs a constant field (zero
    weights, batch-norm bias 1), and the SSH branch's three stacked 3x3 averaging convs turn the
    zero padding into a profile that peaks only at the centre cell of the 7 x 7 grid; the class
    head thresholds that peak for the first anchor, and the box head gives it a centred square.
    """
    import torch
    from feat.face_detectors.Retinaface.Retinaface_model import RETINAFACE_R34_CFG, RetinaFace
    from safetensors.torch import save_file

    net = RetinaFace(RETINAFACE_R34_CFG)
    fpn, ssh = net.fpn, net.ssh3
    with torch.no_grad():
        for block in (fpn.output3, ssh.conv5X5_1, ssh.conv7X7_2, ssh.conv7x7_3):
            conv, bn = block[0], block[1]
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0)
            bn.weight.fill_(1.0)
            bn.bias.zero_()
            conv.weight.fill_(1.0 / conv.weight[0].numel())  # a 3x3 mean over every input channel
        fpn.output3[0].weight.zero_()
        fpn.output3[1].weight.zero_()
        fpn.output3[1].bias.fill_(1.0)
        # on the 7 x 7 grid the conv7X7 channels read 1.0 at the centre, 26/27 beside it
        peak, width = 1.0, ssh.conv7x7_3[0].out_channels
        for level, (classes, boxes) in enumerate(zip(net.ClassHead._convs, net.BboxHead._convs)):
            classes.weight.zero_()
            classes.bias.copy_(torch.tensor([10.0, -10.0, 10.0, -10.0]))  # (background, face) x 2 anchors
            boxes.weight.zero_()
            boxes.bias.zero_()
            if level == 2:
                classes.weight[1, -width:] = 1000.0 / width
                classes.bias[:2] = torch.tensor([0.0, -1000.0 * (peak - 0.5 / 27)])
                # decoded side = prior side x exp(0.2 x delta): the 256 px prior becomes FACE_BOX x 224
                boxes.bias[2:4] = float(np.log(FACE_BOX * 224 / 256) / 0.2)
    state = net.state_dict()
    save_file(
        {k: v.contiguous() for k, v in state.items()},
        _place(root, "py-feat/retinaface_r34", "model.safetensors"),
    )


def _mobilefacenet(root: Path) -> None:
    import torch
    from feat.landmark_detectors.mobilefacenet_test import MobileFaceNet

    from impressions.face_template import TEMPLATE

    net = MobileFaceNet([112, 112], 136, device=torch.device("cpu"))
    # random landmarks give a singular face alignment in py-feat's HOG step; the output batch norm
    # places a mean face (our template, in 0.2..0.8 of the crop) with a small random jitter instead
    xy = TEMPLATE[:, :2].astype(np.float64)
    if xy[8, 1] < xy[19, 1]:  # image y grows downward: chin below brows
        xy[:, 1] = -xy[:, 1]
    xy = 0.2 + 0.6 * (xy - xy.min(axis=0)) / np.ptp(xy, axis=0)
    bn = net.output_layer.bn if hasattr(net, "output_layer") else None
    if bn is None:
        bn = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm1d)][-1]
    with torch.no_grad():
        bn.running_mean.zero_()
        bn.running_var.fill_(1.0)
        bn.weight.fill_(1e-3)
        bn.bias.copy_(torch.from_numpy(xy.reshape(-1)).float())  # (x, y) pairs, as py-feat reads them
    path = _place(root, "py-feat/mobilefacenet", "mobilefacenet_model_best.pth.tar")
    torch.save({"state_dict": net.state_dict()}, path)


def _xgb_au(root: Path, rng: np.random.Generator) -> None:
    import skops.io
    import xgboost
    from feat.au_detectors.StatLearning.SL_test import XGBClassifier
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    hog = rng.normal(size=(24, HOG_FEATURES))
    parts = {}
    for region, components in (("upper", 6), ("lower", 5), ("full", 8)):
        scaler = StandardScaler().fit(hog)
        parts[f"scaler_{region}"] = scaler
        parts[f"pca_model_{region}"] = PCA(n_components=components).fit(scaler.transform(hog))
    model = XGBClassifier()
    upper = ("AU1", "AU2", "AU7")
    lower = ("AU11", "AU14", "AU17", "AU23", "AU24", "AU26")
    classifiers = {}
    for key in model.au_keys:
        width = (6 if key in upper else 5 if key in lower else 8) + 136  # PCA scores + 68 landmarks
        x = rng.normal(size=(32, width))
        classifiers[key] = xgboost.XGBClassifier(n_estimators=2, max_depth=2).fit(x, np.arange(32) % 2)
    model.load_weights(**parts, classifiers=classifiers)
    skops.io.dump(model, _place(root, "py-feat/xgb_au", "xgb_au_classifier_v2.skops"))


def _resmasknet(root: Path) -> None:
    import torch
    from feat.emo_detectors.ResMaskNet.resmasknet_test import ResMasking
    from torch import nn

    config = {"in_channels": 3, "num_classes": 7}
    _place(root, "py-feat/resmasknet", "config.json").write_text(json.dumps(config))
    net = ResMasking("", in_channels=config["in_channels"])
    net.fc = nn.Sequential(nn.Dropout(0.4), nn.Linear(512, config["num_classes"]))
    path = _place(root, "py-feat/resmasknet", "ResMaskNet_Z_resmasking_dropout1_rot30.pth")
    torch.save({"net": net.state_dict()}, path)


def write_weights(root: Path, seed: int = 0) -> Path:
    """Every file `Detectorv1` needs for the pyfeat backend, in a hub cache at `root`; returns root."""
    import torch

    torch.manual_seed(seed)
    _retinaface(root)
    _mobilefacenet(root)
    _xgb_au(root, np.random.default_rng(seed))
    _resmasknet(root)
    return root
