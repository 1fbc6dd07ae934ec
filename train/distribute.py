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
from typing import Iterator

import tensorflow as tf

from train.options import STRATEGIES

log = logging.getLogger(__name__)


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
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    elif name == "mirrored":
        strategy = tf.distribute.MirroredStrategy()
    else:
        strategy = tf.distribute.get_strategy()
    log.info("distribution: %s with %d replica(s)", type(strategy).__name__, strategy.num_replicas_in_sync)
    return strategy


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
