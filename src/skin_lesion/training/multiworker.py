"""Training across processes and machines with ``tf.distribute.MultiWorkerMirroredStrategy``.

Every worker runs the same ``03_train.py`` command with its own ``TF_CONFIG``. As the
TensorFlow multi-worker guide prescribes, every worker also runs the same code — saving
included, since reading synchronised variables is a collective operation all workers must
join — but only the chief writes into the outputs folder: the other workers write their run
folder (models, logs, Keras backups) into a temporary folder that is removed when they finish.
To resume, every worker copies the chief's run folder (which must be on a filesystem all
workers see) and restores the same epoch.

Keras 3 does not support the strategy out of the box (keras-team/keras#20585,
tensorflow/tensorflow#72388): building a model reduces a nested data batch that the
multi-worker strategy cannot reduce, and per-step logs are averaged along an axis scalars do not
have. :func:`patch_keras` corrects both, only while a multi-worker strategy is in use, and
refuses to run on a Keras whose internals differ from the version it was written for.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import tensorflow as tf

from skin_lesion import layout
from skin_lesion.errors import UserError
from skin_lesion.training.config import TrainConfig

log = logging.getLogger(__name__)


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    return (isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
            and strategy.extended._in_multi_worker_mode())


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """The chief: the ``chief`` task, or worker 0 of a cluster without one; any single process."""
    if not is_multi_worker(strategy):
        return True
    resolver = strategy.cluster_resolver
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "chief" or (not has_chief and resolver.task_type == "worker"
                                             and resolver.task_id == 0)


def describe_worker(strategy: tf.distribute.Strategy) -> str:
    resolver = strategy.cluster_resolver
    return f"{resolver.task_type} {resolver.task_id} of {strategy.extended._num_workers}"


@contextlib.contextmanager
def worker_config(config: TrainConfig, strategy: tf.distribute.Strategy,
                  resume_from: Path | None = None) -> Iterator[TrainConfig]:
    """The settings this process trains with: unchanged on the chief; on other workers an
    outputs folder of their own in a temporary folder (removed afterwards), holding a copy of
    the chief's run folder when resuming. The image cache stays shared."""
    if is_chief(strategy):
        yield config
        return
    scratch = Path(tempfile.mkdtemp(prefix=f"skin-lesion-{describe_worker(strategy).replace(' ', '-')}-"))
    try:
        if resume_from is not None:
            shutil.copytree(resume_from, layout.OutputsLayout(scratch).runs_dir / Path(resume_from).name,
                            symlinks=True)
        log.info("This process is %s: its copies of the run files go to %s and are removed at the end",
                 describe_worker(strategy), scratch)
        yield replace(config, outputs_dir=str(scratch), cache_dir=config.cache_dir)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def wait_for_all_workers(strategy: tf.distribute.Strategy) -> None:
    """A barrier: the chief hosts the cluster's coordination service, so it must not exit
    while the other workers are still finishing (they would report it as dead)."""
    if is_multi_worker(strategy):
        strategy.reduce("SUM", strategy.run(lambda: tf.constant(1.0)), axis=None)


def worker_run_dir(run_dir: Path, config: TrainConfig) -> Path:
    """Where this worker's copy of ``run_dir`` lives (itself on the chief)."""
    copy = layout.OutputsLayout(Path(config.outputs_dir)).runs_dir / Path(run_dir).name
    return copy if copy.exists() else Path(run_dir)


def patch_keras() -> None:
    """Make Keras 3's TensorFlow trainer work under a multi-worker strategy (see the module
    docstring); idempotent."""
    from keras.src.backend.tensorflow import trainer

    if getattr(trainer, "_multi_worker_patched", False):
        return
    needed = ("reduce_per_replica", "_collective_all_reduce_multi_worker", "_is_per_replica_instance")
    if not all(hasattr(trainer, name) for name in needed) or not hasattr(trainer.TensorFlowTrainer,
                                                                          "_maybe_symbolic_build"):
        raise UserError("This Keras version's trainer differs from the one the multi-worker "
                        "support was written for (Keras 3.15); install the versions of "
                        "requirements-lock.txt to train on several workers.")
    original_reduce = trainer.reduce_per_replica

    @functools.wraps(original_reduce)
    def reduce_per_replica(values, strategy, reduction):
        if not trainer._collective_all_reduce_multi_worker(strategy) or reduction not in ("auto", "mean"):
            return original_reduce(values, strategy, reduction)
        # Step logs are metric results, already synchronised across workers: a plain mean
        # over workers (no axis: they are scalars) returns them as they are.
        return tf.nest.map_structure(
            lambda value: strategy.reduce("MEAN", value, axis=None)
            if trainer._is_per_replica_instance(value) else value, values)

    original_build = trainer.TensorFlowTrainer._maybe_symbolic_build

    @functools.wraps(original_build)
    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        if iterator is None or not trainer._collective_all_reduce_multi_worker(self.distribute_strategy):
            return original_build(self, iterator=iterator, data_batch=data_batch)
        # Only the shapes of a batch are needed to build: this worker's part will do.
        for _, _, batches in iterator:
            batch = tf.nest.map_structure(
                lambda value: self.distribute_strategy.experimental_local_results(value)[0]
                if trainer._is_per_replica_instance(value) else value, next(batches))
            break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=batch)

    trainer.reduce_per_replica = reduce_per_replica
    trainer.TensorFlowTrainer._maybe_symbolic_build = maybe_symbolic_build
    trainer._multi_worker_patched = True
