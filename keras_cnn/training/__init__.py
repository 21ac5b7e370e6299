"""Bag-of-Tricks training toolkit: schedules, optimizers, losses, distillation.

Composes Keras' own pieces (schedules, decoupled weight decay, `use_ema`,
`SwapEMAWeights`, `label_smoothing`, `keras.distillation`) and adds only what Keras lacks:
warmup for any schedule, the no-bias-decay variable list, paper-default optimizer settings
and a distiller that refuses probability losses on logits. Backend-agnostic (`keras.ops`).

    from keras_cnn import training

    lr = training.scale_learning_rate(0.1, batch_size=1024)               # 0.4
    schedule = training.build_schedule("cosine", lr, steps_per_epoch=1251, epochs=120,
                                       warmup_epochs=5)
    optimizer = training.build_optimizer("sgd", schedule, weight_decay=1e-4, model=model)
    model.compile(optimizer, training.classification_loss(label_smoothing=0.1))
"""

from keras_cnn.training.distillation import Distiller, make_distiller
from keras_cnn.training.losses import classification_loss
from keras_cnn.training.optimizers import OPTIMIZERS, build_optimizer, no_decay_variables
from keras_cnn.training.schedules import (
    SCHEDULES,
    WarmupSchedule,
    build_schedule,
    polynomial_decay,
    scale_learning_rate,
    step_decay,
    warmup_cosine,
    warmup_exponential,
)

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "Distiller",
    "WarmupSchedule",
    "build_optimizer",
    "build_schedule",
    "classification_loss",
    "make_distiller",
    "no_decay_variables",
    "polynomial_decay",
    "scale_learning_rate",
    "step_decay",
    "warmup_cosine",
    "warmup_exponential",
]
