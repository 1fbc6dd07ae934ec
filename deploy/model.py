"""One loaded export version: the SavedModel's signatures, called from the inference threads.

The server serves the SavedModel itself (``tf.saved_model.load``), not the Keras model of the run: the
bytes it was handed go through exactly the graph a real TF Serving would run (decode, crop and resize
inside), the export folder is all a deployment needs (no run folder, no training code), and what
``make export`` measured against Keras is what answers requests.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from deploy import layout
from deploy.images import ImageRejected, decode_failure

log = logging.getLogger(__name__)

Prediction = tuple[np.ndarray, int]  # (probabilities in class order, the version that computed them)


class ModelLoadError(RuntimeError):
    """A version folder that cannot be served (unreadable, wrong signatures, a failed warm-up)."""


@dataclass
class ServedModel:
    """A loaded, warmed-up version of an export."""

    name: str
    version: int
    path: Path
    classes: tuple[str, ...]
    image_size: int
    card: dict[str, Any]
    _loaded: Any = field(repr=False)
    loaded_at: float = field(default_factory=time.time)

    @classmethod
    def load(cls, name: str, path: Path) -> "ServedModel":
        """Load ``path`` (a version folder) and read its classes from the model card.

        Raises:
            ModelLoadError: anything that keeps the folder from serving, with the reason.
        """
        import tensorflow as tf

        card = layout.read_card(path)
        if card is None or not card.get("classes"):
            raise ModelLoadError(f"{path} has no readable {layout.CARD} with the classes")
        try:
            loaded = tf.saved_model.load(str(path))
        except (OSError, ValueError, tf.errors.OpError) as exc:
            raise ModelLoadError(f"{path} is not a loadable SavedModel: {exc}") from exc
        missing = {layout.BYTES_SIGNATURE, layout.PIXELS_SIGNATURE} - set(loaded.signatures)
        if missing:
            raise ModelLoadError(f"{path} lacks the signature(s) {sorted(missing)}: was it written by make export?")
        return cls(name, int(path.name), path, tuple(card["classes"]), int(card["image_size"]), card, loaded)

    def _call(self, signature: str, **inputs: Any) -> np.ndarray:
        import tensorflow as tf

        fn = self._loaded.signatures[signature]
        outputs = fn(**{k: tf.constant(v) for k, v in inputs.items()})
        return np.asarray(outputs["probabilities"].numpy(), np.float32)

    def predict_bytes(self, images: Sequence[bytes]) -> np.ndarray:
        """Probabilities for encoded images (one model call); ``tf.errors.InvalidArgumentError`` if one is bad."""
        return self._call(layout.BYTES_SIGNATURE, **{layout.BYTES_INPUT: list(images)})

    def predict_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Probabilities for uint8 pixels ``[n, height, width, 3]``."""
        return self._call(layout.PIXELS_SIGNATURE, **{layout.PIXELS_INPUT: np.asarray(pixels, np.uint8)})

    def classify_batch(self, batch: Sequence[tuple[bytes, str]]) -> list[Prediction | ImageRejected]:
        """One result per ``(bytes, format)``: a batch in one call, or each alone when one will not decode.

        An image whose header passed may still fail to decode (a truncated JPEG); that must fail its own
        request only, so the batch is run again image by image to find it.
        """
        import tensorflow as tf

        try:
            return [(row, self.version) for row in self.predict_bytes([data for data, _ in batch])]
        except tf.errors.InvalidArgumentError:
            pass
        results: list[Prediction | ImageRejected] = []
        for data, fmt in batch:
            try:
                results.append((self.predict_bytes([data])[0], self.version))
            except tf.errors.InvalidArgumentError:
                results.append(decode_failure(data, fmt))
        return results

    def warm_up(self, batch_sizes: Sequence[int]) -> None:
        """Run both signatures on a generated photo at each batch size and check what comes out.

        Raises:
            ModelLoadError: a prediction that is not a probability vector over the card's classes.
        """
        import tensorflow as tf

        height, width = self.image_size + 9, self.image_size  # not square: the crop runs too
        ramp = np.linspace(0, 255, height * width * 3, dtype=np.float32).reshape(height, width, 3)
        pixels = ramp.astype(np.uint8)
        jpeg = tf.io.encode_jpeg(pixels).numpy()
        outputs = self._loaded.signatures[layout.BYTES_SIGNATURE](**{layout.BYTES_INPUT: tf.constant([jpeg])})
        names = tuple(c.decode("utf-8") for c in outputs["classes"].numpy()[0])
        if names != self.classes:
            raise ModelLoadError(f"{self.path}: the graph's classes {names} differ from the card's {self.classes}")
        for size in batch_sizes:
            for probs in (self.predict_bytes([jpeg] * size), self.predict_pixels(np.stack([pixels] * size))):
                if probs.shape != (size, len(self.classes)) or not np.allclose(probs.sum(axis=1), 1.0, atol=1e-3):
                    raise ModelLoadError(f"{self.path}: warm-up at batch {size} gave no probabilities ({probs.shape})")

    def metadata(self) -> dict[str, Any]:
        """TF Serving's ``GetModelMetadataResponse`` JSON for this version's signatures."""
        from tensorflow.core.framework import types_pb2

        def tensors(specs: dict[str, Any], prefix: str) -> dict[str, Any]:
            return {
                key: {
                    "dtype": types_pb2.DataType.Name(spec.dtype.as_datatype_enum),
                    "tensor_shape": {
                        "dim": [{"size": str(-1 if d is None else d), "name": ""} for d in spec.shape.as_list()],
                        "unknown_rank": False,
                    },
                    "name": f"{prefix}{key}:0",
                }
                for key, spec in sorted(specs.items())
            }

        defs = {}
        for name, fn in self._loaded.signatures.items():
            defs[name] = {
                "inputs": tensors(fn.structured_input_signature[1], f"{name}_"),
                "outputs": tensors(fn.structured_outputs, "StatefulPartitionedCall_"),
                "method_name": "tensorflow/serving/predict",
            }
        return {
            "model_spec": {"name": self.name, "signature_name": "", "version": str(self.version)},
            "metadata": {"signature_def": {"signature_def": defs}},
        }
