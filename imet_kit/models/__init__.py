"""Backbones, heads and the multi-label classifier (Keras 3)."""

from imet_kit.models.backbones import (
    BACKBONES,
    BackboneSpec,
    build_backbone,
    get_backbone_spec,
    preprocessing_layer,
)
from imet_kit.models.classifier import build_classifier, load_classifier, set_backbone_trainable
from imet_kit.models.heads import AvgMaxPooling2D, GeMPooling2D, apply_head, pooling_layer

__all__ = [
    "AvgMaxPooling2D",
    "BACKBONES",
    "BackboneSpec",
    "GeMPooling2D",
    "apply_head",
    "build_backbone",
    "build_classifier",
    "get_backbone_spec",
    "load_classifier",
    "pooling_layer",
    "preprocessing_layer",
    "set_backbone_trainable",
]
