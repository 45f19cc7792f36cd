"""imet_kit: multi-label fine-grained image classification and retrieval on Keras 3.

Importing the package is cheap: TensorFlow / Keras load only when a model,
dataset or training function is used.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
