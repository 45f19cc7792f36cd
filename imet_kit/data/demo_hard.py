"""The ``hard`` variant of the demo dataset: small objects anywhere on wide photographs.

Shaped like the kept-back dataset of issue 12: 98 labels, the shorter side 128-192 px and the
aspect ratio 1.0-2.4 (so a centre crop loses the ends), and besides the default variant's font
cards ("culture") and handwritten digits, 49 glyph stickers (``tag::glyph_*``: letters, some
of them mirror pairs such as ``b`` / ``d`` and ``p`` / ``q``, and symbols). Objects are drawn
about half the default size (digits 16-28 px, glyphs 14-24 px, cards 14-22 px high), at most
10 labels per image.

Example:
    >>> from imet_kit.data.demo import make_demo_dataset
    >>> info = make_demo_dataset("demo_hard", size="medium", seed=1, variant="hard")  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from imet_kit.data.demo_material import (
    LETTERS,
    Material,
    crop_resize,
    digit_sticker,
    place,
    text_card,
    zipf,
)
from imet_kit.data.labels import LabelSpace

GLYPHS = {
    **{f"upper_{c}": c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"},
    **{f"lower_{c}": c for c in "abdefghkmnpqrty"},
    "ampersand": "&", "question": "?", "percent": "%", "dollar": "$", "hash": "#", "at": "@",
    "section": "\u00a7", "pilcrow": "\u00b6",
}
GLYPH_FONTS = ("DejaVuSans-Bold.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSansMono-Bold.ttf")
MAX_LABELS = 10


def hard_material(mat: Material) -> Material:
    """The default material with the glyph labels appended (their ids follow the digits')."""
    names = list(mat.space.names) + [f"tag::glyph_{g}" for g in GLYPHS]
    return dataclasses.replace(mat, space=LabelSpace.from_names(names))


def _glyph_sticker(char: str, font: str, height: int, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFont

    face = ImageFont.truetype(font, size=max(8, int(height * 0.8)))
    left, top, right, bottom = face.getbbox(char)
    bg = tuple(int(v) for v in rng.integers(200, 256, size=3))
    ink = tuple(int(v) for v in rng.integers(0, 80, size=3))
    card = Image.new("RGB", (right - left + 4, bottom - top + 4), bg)
    ImageDraw.Draw(card).text((2 - left, 2 - top), char, font=face, fill=ink)
    return np.asarray(card)


def render_hard(mat: Material, rng: np.random.Generator) -> tuple[np.ndarray, list[int]]:
    """One hard-variant image and its label ids (``mat`` from :func:`hard_material`)."""
    import matplotlib

    h = int(rng.integers(128, 193))
    w = int(round(h * rng.uniform(1.0, 2.4)))
    scene_p, culture_p = zipf(mat.n_scene, 1.2), zipf(mat.n_culture, 1.7)
    digit_p, glyph_p = zipf(10, 1.0), zipf(len(GLYPHS), 1.0)
    scene = int(rng.choice(mat.n_scene, p=scene_p))
    img = crop_resize(mat.photos[scene], h, w, rng)
    labels = {mat.n_culture + scene}
    boxes: list = []

    def paste(patch: np.ndarray, label: int) -> None:
        if len(labels) >= MAX_LABELS and label not in labels:
            return
        pos = place(h, w, patch.shape[0], patch.shape[1], boxes, rng)
        if pos is not None:
            img[pos[0] : pos[0] + patch.shape[0], pos[1] : pos[1] + patch.shape[1]] = patch
            labels.add(label)

    if rng.random() < 0.15:  # a second photograph as an inset
        other = int(rng.choice(mat.n_scene, p=scene_p))
        ih, iw = int(h * rng.uniform(0.25, 0.4)), int(w * rng.uniform(0.2, 0.3))
        framed = np.full((ih + 4, iw + 4, 3), 255, np.uint8)
        framed[2:-2, 2:-2] = crop_resize(mat.photos[other], ih, iw, rng)
        paste(framed, mat.n_culture + other)
    for f in rng.choice(mat.n_culture, size=int(rng.choice(3, p=[0.15, 0.72, 0.13])), replace=False,
                        p=culture_p):
        text = "".join(rng.choice(list(LETTERS), size=int(rng.integers(3, 6))))
        paste(text_card(mat.fonts[int(f)], text, int(rng.integers(14, 23)), rng), int(f))
    digit_base, glyph_base = mat.n_culture + mat.n_scene, mat.n_culture + mat.n_scene + 10
    for _ in range(int(rng.choice(5, p=[0.25, 0.35, 0.2, 0.12, 0.08]))):
        k, size = int(rng.choice(10, p=digit_p)), int(rng.integers(16, 29))
        samples = mat.digits[k]
        ink, alpha = digit_sticker(samples[int(rng.integers(len(samples)))], size, rng)
        paper = np.full((size, size, 3), 235, np.float32)  # a plain pale sticker
        paste((paper * (1 - alpha) + ink * alpha).astype(np.uint8), digit_base + k)
    fonts = [os.path.join(matplotlib.get_data_path(), "fonts", "ttf", f) for f in GLYPH_FONTS]
    names = list(GLYPHS)
    for _ in range(int(rng.choice(5, p=[0.2, 0.35, 0.25, 0.12, 0.08]))):
        g = int(rng.choice(len(names), p=glyph_p))
        font = fonts[int(rng.integers(len(fonts)))]
        paste(_glyph_sticker(GLYPHS[names[g]], font, int(rng.integers(14, 25)), rng), glyph_base + g)
    return img, sorted(labels)
