"""Scale-out: pick a ``tf.distribute`` strategy and the mixed-precision policy for a training run.

``auto`` picks, in this order: ``MultiWorkerMirroredStrategy`` when ``TF_CONFIG`` is set (one process per
machine, each started with the same ``TF_CONFIG`` cluster and its own task index), ``MirroredStrategy``
when this machine has more than one GPU, otherwise the default (single-device) strategy.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from typing import TYPE_CHECKING, Iterator

import tensorflow as tf

if TYPE_CHECKING:
    import keras

from train.options import STRATEGIES

log = logging.getLogger(__name__)

# TensorFlow configures collective ops once per process, before it runs anything: one multi-worker strategy
# per process, made early (see train.train.train) and handed out again by make_strategy.
_MULTI_WORKER: list[tf.distribute.MultiWorkerMirroredStrategy] = []


def make_strategy(name: str = "auto") -> tf.distribute.Strategy:
    """The distribution strategy named by ``name`` (one of :data:`STRATEGIES`)."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
    if name == "auto":
        if os.environ.get("TF_CONFIG"):
            name = "multi_worker"
        elif len(tf.config.list_physical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            name = "default"
    if name == "multi_worker":
        if not _MULTI_WORKER:
            _MULTI_WORKER.append(tf.distribute.MultiWorkerMirroredStrategy())
            _patch_keras_for_multi_worker()
        strategy = _MULTI_WORKER[0]
    elif name == "mirrored":
        strategy = tf.distribute.MirroredStrategy()
    else:
        strategy = tf.distribute.get_strategy()
    log.info("distribution: %s with %d replica(s)", type(strategy).__name__, strategy.num_replicas_in_sync)
    return strategy


def synchronize_batch_norm(model: "keras.Model", strategy: tf.distribute.Strategy) -> int:
    """Under a multi-worker strategy, make every batch-norm layer use the statistics of the global batch.

    Otherwise each worker's moving mean and variance follow its own share of the data, and the workers end
    with different models. Returns how many layers were changed.
    """
    import keras

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return 0
    layers = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in layers:
        layer.synchronized = True  # read at every call (Keras 3, TensorFlow backend)
    return len(layers)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run's outputs (always, except non-chief multi-worker tasks)."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    return is_chief_task(json.loads(os.environ.get("TF_CONFIG", "{}")))


def is_chief_task(tf_config: dict) -> bool:
    """Whether the task of a ``TF_CONFIG`` mapping is the chief (or worker 0 when the cluster has no chief)."""
    task, cluster = tf_config.get("task", {}), tf_config.get("cluster", {})
    if "chief" in cluster:
        return task.get("type") == "chief"
    return task.get("type", "worker") == "worker" and int(task.get("index", 0)) == 0


@contextlib.contextmanager
def precision_policy(mixed: bool) -> Iterator[str]:
    """Run a block under ``mixed_float16`` (when ``mixed``) and restore the previous global policy after."""
    import keras

    previous = keras.mixed_precision.global_policy().name
    policy = "mixed_float16" if mixed else "float32"
    if mixed and not tf.config.list_physical_devices("GPU"):
        log.warning("mixed precision on a CPU is slower than float32; it pays off on recent GPUs")
    keras.mixed_precision.set_global_policy(policy)
    try:
        yield policy
    finally:
        keras.mixed_precision.set_global_policy(previous)


def _patch_keras_for_multi_worker() -> None:
    """Let Keras 3's ``model.fit`` run under ``MultiWorkerMirroredStrategy`` (keras-team/keras#20585).

    Up to at least Keras 3.15 ``fit`` fails there twice: the symbolic build hands a tuple of per-replica
    batches to ``strategy.reduce``, which takes one value, and each step's logs (scalars) are reduced with
    ``axis=0``. The build only needs the shapes of a batch (this worker's first replica has them) and a
    scalar's mean over the replicas needs no axis. Only multi-worker strategies take the changed paths.
    """
    from keras.src.backend.tensorflow import trainer

    if getattr(trainer, "_multi_worker_patched", False):
        return
    original_reduce, original_build = trainer.reduce_per_replica, trainer.TensorFlowTrainer._maybe_symbolic_build

    def reduce_per_replica(values, strategy, reduction="auto"):  # type: ignore[no-untyped-def]
        if reduction not in ("auto", "mean") or not trainer._collective_all_reduce_multi_worker(strategy):
            return original_reduce(values, strategy, reduction)
        return tf.nest.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)

    def maybe_symbolic_build(self, iterator=None, data_batch=None):  # type: ignore[no-untyped-def]
        strategy = self._distribute_strategy
        if iterator is None or strategy is None or not trainer._collective_all_reduce_multi_worker(strategy):
            return original_build(self, iterator=iterator, data_batch=data_batch)
        for _, _, batches in iterator:
            data_batch = tf.nest.map_structure(
                lambda v: (
                    strategy.experimental_local_results(v)[0] if isinstance(v, tf.distribute.DistributedValues) else v
                ),
                next(batches),
            )
            break
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    trainer.reduce_per_replica = reduce_per_replica
    trainer.TensorFlowTrainer._maybe_symbolic_build = maybe_symbolic_build
    trainer._multi_worker_patched = True
