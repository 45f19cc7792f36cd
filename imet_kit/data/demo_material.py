"""The real material of the demo dataset and the primitives that draw it: photographs from
scikit-image / matplotlib, scikit-learn's handwritten digits, matplotlib's TrueType and OpenCV's
Hershey fonts (see :mod:`imet_kit.data.demo`). Nothing is downloaded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import cv2
import numpy as np

from imet_kit.data.labels import LabelSpace
from imet_kit.errors import InputError

# skimage sample photographs that ship inside the wheel (no download).
SCENES = {
    "astronaut": "astronaut.png", "cat": "chelsea.png", "coffee": "coffee.png",
    "rocket": "rocket.jpg", "coins": "coins.png", "cameraman": "camera.png",
    "moon": "moon.png", "brick": "brick.png", "grass": "grass.png", "gravel": "gravel.png",
    "galaxies": "hubble_deep_field.jpg", "motorcycle": "motorcycle_left.png",
    "retina": "retina.jpg", "cells": "ihc.png", "portrait": "mpl:grace_hopper.jpg",
}
# matplotlib's bundled TrueType faces; OpenCV's Hershey vector fonts.
TTF_FONTS = {
    "dejavu_sans": "DejaVuSans.ttf", "dejavu_sans_bold": "DejaVuSans-Bold.ttf",
    "dejavu_serif": "DejaVuSerif.ttf", "dejavu_serif_italic": "DejaVuSerif-Italic.ttf",
    "dejavu_mono": "DejaVuSansMono.ttf", "stix": "STIXGeneral.ttf",
    "stix_italic": "STIXGeneralItalic.ttf", "cm_roman": "cmr10.ttf", "cm_sans": "cmss10.ttf",
    "cm_typewriter": "cmtt10.ttf", "cm_bold": "cmb10.ttf", "cm_italic": "cmti10.ttf",
    "dejavu_serif_bold": "DejaVuSerif-Bold.ttf", "dejavu_sans_oblique": "DejaVuSans-Oblique.ttf",
    "dejavu_mono_bold": "DejaVuSansMono-Bold.ttf", "stix_bold": "STIXGeneralBol.ttf",
}
HERSHEY_FONTS = {
    "hershey_simplex": cv2.FONT_HERSHEY_SIMPLEX, "hershey_duplex": cv2.FONT_HERSHEY_DUPLEX,
    "hershey_complex": cv2.FONT_HERSHEY_COMPLEX, "hershey_triplex": cv2.FONT_HERSHEY_TRIPLEX,
    "hershey_script": cv2.FONT_HERSHEY_SCRIPT_SIMPLEX,
    "hershey_script_complex": cv2.FONT_HERSHEY_SCRIPT_COMPLEX,
    "hershey_simplex_italic": cv2.FONT_HERSHEY_SIMPLEX | cv2.FONT_ITALIC,
    "hershey_complex_italic": cv2.FONT_HERSHEY_COMPLEX | cv2.FONT_ITALIC,
}
LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZabdefghkmnpqrstuy"


def zipf(n: int, exponent: float) -> np.ndarray:
    """Zipf label probabilities, ranks shuffled by a fixed permutation (so the tail mixes kinds)."""
    p = 1.0 / np.arange(1, n + 1) ** exponent
    return (p / p.sum())[np.random.default_rng(2019).permutation(n)]


@dataclass
class Material:
    space: LabelSpace
    photos: list[np.ndarray]
    digits: list[list[np.ndarray]]  # per digit class, its 8x8 images (0..16)
    fonts: list[tuple[str, object]]  # ("ttf", path) or ("hershey", face)
    n_scene: int
    n_culture: int


def load_material() -> Material:
    import matplotlib
    import skimage.data
    from sklearn.datasets import load_digits

    photos = []
    for fname in SCENES.values():
        if fname.startswith("mpl:"):
            path = os.path.join(matplotlib.get_data_path(), "sample_data", fname[4:])
        else:
            path = os.path.join(skimage.data.data_dir, fname)
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        if img is None:
            raise InputError(f"Demo material '{path}' could not be read; reinstall scikit-image.")
        photos.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
    digits = load_digits()
    by_class = [list(digits.images[digits.target == k]) for k in range(10)]
    ttf_dir = os.path.join(matplotlib.get_data_path(), "fonts", "ttf")
    fonts = [("ttf", os.path.join(ttf_dir, f)) for f in TTF_FONTS.values()]
    fonts += [("hershey", face) for face in HERSHEY_FONTS.values()]
    names = [f"culture::{n}" for n in list(TTF_FONTS) + list(HERSHEY_FONTS)]
    names += [f"tag::{s}" for s in SCENES] + [f"tag::digit_{k}" for k in range(10)]
    return Material(LabelSpace.from_names(names), photos, by_class, fonts,
                     n_scene=len(SCENES), n_culture=len(fonts))


def crop_resize(photo: np.ndarray, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    ph, pw = photo.shape[:2]
    scale = rng.uniform(0.45, 1.0)
    ch = int(min(ph, pw * h / w) * scale)
    cw = int(ch * w / h)
    y0 = int(rng.integers(0, ph - ch + 1))
    x0 = int(rng.integers(0, pw - cw + 1))
    return cv2.resize(photo[y0 : y0 + ch, x0 : x0 + cw], (w, h), interpolation=cv2.INTER_AREA)


def text_card(font: tuple[str, object], text: str, height: int, rng: np.random.Generator) -> np.ndarray:
    bg = rng.integers(200, 256, size=3)
    ink = tuple(int(v) for v in rng.integers(0, 70, size=3))
    if font[0] == "ttf":
        from PIL import Image, ImageDraw, ImageFont

        face = ImageFont.truetype(font[1], size=max(8, int(height * 0.75)))
        left, top, right, bottom = face.getbbox(text)
        card = Image.new("RGB", (right - left + 8, bottom - top + 8), tuple(int(v) for v in bg))
        ImageDraw.Draw(card).text((4 - left, 4 - top), text, font=face, fill=ink)
        return np.asarray(card)
    scale = height / 30.0
    thick = max(1, int(round(scale * 1.5)))
    (tw, th), base = cv2.getTextSize(text, font[1], scale, thick)
    card = np.empty((th + base + 8, tw + 8, 3), np.uint8)
    card[:] = bg
    cv2.putText(card, text, (4, th + 4), font[1], scale, ink, thick, cv2.LINE_AA)
    return card


def digit_sticker(digit: np.ndarray, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    alpha = cv2.resize((digit / 16.0).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    alpha = np.clip(alpha * 1.3, 0, 1)[..., None]
    colour = rng.integers(0, 256, size=3)
    if colour.mean() > 110:  # keep the ink dark or saturated enough to read
        colour = colour // 3
    return np.broadcast_to(colour, (size, size, 3)).astype(np.float32), alpha


def place(h: int, w: int, ph: int, pw: int, boxes: list, rng: np.random.Generator):
    """A position for a ph x pw patch overlapping no earlier box (None if none found)."""
    if ph >= h or pw >= w:
        return None
    for _ in range(30):
        y, x = int(rng.integers(0, h - ph)), int(rng.integers(0, w - pw))
        if all(y + ph <= b[0] or b[2] <= y or x + pw <= b[1] or b[3] <= x for b in boxes):
            boxes.append((y, x, y + ph, x + pw))
            return y, x
    return None
