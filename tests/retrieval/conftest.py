"""Shared by the retrieval tests: a tiny image -> "embedding" model and a folder of small random
images. Fixtures, since tests/ is not a package that test modules import from."""

import cv2
import numpy as np
import pytest


def _tiny_embedding_model(size=16, dim=6):
    import keras

    keras.utils.set_random_seed(0)
    image = keras.Input((size, size, 3), name="image")
    x = keras.layers.Rescaling(1 / 255.0)(image)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(image, keras.layers.Dense(dim, name="embedding")(x))


def _write_images(folder, n, rng):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = rng.integers(0, 256, size=(33, 31, 3), dtype=np.uint8)  # odd sizes catch h/w swaps
        cv2.imwrite(str(folder / f"img{i:02d}.png"), img)


@pytest.fixture(scope="session")
def tiny_embedding_model():
    """``tiny_embedding_model(size=16, dim=6) -> keras.Model`` (input "image", layer "embedding")."""
    return _tiny_embedding_model


@pytest.fixture(scope="session")
def write_images():
    """``write_images(folder, n, rng)``: n random 33x31 PNGs named img00.png, img01.png, ..."""
    return _write_images
