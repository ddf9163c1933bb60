"""Emotion -> prototypic Action Units: the one codebook the expression backend and the AU maps share.

The prototypes are EMFACS-7's (Friesen & Ekman 1983, *EMFACS-7: Emotional Facial Action Coding
System*, unpublished manual, UCSF), in the one-combination-per-emotion form it is usually tabulated
in: happiness 6+12; sadness 1+4+15; surprise 1+2+5+26; fear 1+2+4+5+7+20+26; anger 4+5+7+23;
disgust 9+15+16. AU16 (lower lip depressor) is not among the 17 AUs estimated here (`schemas.AUS`),
so disgust is 9+15. EMFACS also lists disgust variants with AU10 and AU17 (9 or 10, with 15, 16 or
17); they are left out so that every emotion has exactly one prototype. Neutral has no AUs.

This is not the codebook of the AU-guided attention paper (its Fig. 2 lists disgust as 9, 10, 16,
17, 25, 26 and adds AU25/AU26 to several emotions); see docs/interpretation.md.
"""

from __future__ import annotations

from types import MappingProxyType

from impressions.schemas import AUS, EMOTIONS

CODEBOOK = MappingProxyType({
    "anger": ("AU04", "AU05", "AU07", "AU23"),
    "disgust": ("AU09", "AU15"),
    "fear": ("AU01", "AU02", "AU04", "AU05", "AU07", "AU20", "AU26"),
    "happiness": ("AU06", "AU12"),
    "sadness": ("AU01", "AU04", "AU15"),
    "surprise": ("AU01", "AU02", "AU05", "AU26"),
    "neutral": (),
})  # fmt: skip
"""Emotion (`schemas.EMOTIONS`) -> its EMFACS prototype AUs (`schemas.AUS`), read-only."""

if set(CODEBOOK) != set(EMOTIONS) or not {au for aus in CODEBOOK.values() for au in aus} <= set(AUS):
    raise ImportError("codebook: every emotion needs an entry, and every AU must be in schemas.AUS")
