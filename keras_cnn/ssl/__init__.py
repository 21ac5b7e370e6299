"""Semi-supervised learning: pseudo-labels, Noisy Student, UDA and Meta Pseudo Labels.

The losses (`uda_consistency_loss`, `tsa_*`, `alpha_ramp`) are backend-agnostic `keras.ops`; the
models with custom `train_step`s (`UDA`, `PseudoLabelModel`, `MetaPseudoLabels`) are
TensorFlow-specific and run under any `tf.distribute` strategy and mixed precision.

    from keras_cnn import ssl
    mpl = ssl.MetaPseudoLabels(teacher, student)          # both output logits
    mpl.compile(teacher_optimizer=..., student_optimizer=...)
    mpl.fit(dataset_of_((x_l, y_l), (x_u_weak, x_u_strong)), ...)
    ssl.finetune_student(mpl.student, labeled, ...)
"""

from keras_cnn.ssl.mpl import (
    MetaPseudoLabels,
    ReducedMetaPseudoLabels,
    StudentWaitSchedule,
    finetune_student,
    reduced_teacher_head,
)
from keras_cnn.ssl.noisy_student import DEFAULT_NOISE, noisy_student, round_dir
from keras_cnn.ssl.pseudo_labels import (
    PSEUDO_LABEL_MODES,
    PseudoLabelModel,
    PseudoLabels,
    alpha_ramp,
    balance_classes,
    pseudo_label,
)
from keras_cnn.ssl.uda import (
    MASK_RULES,
    TSA_SCHEDULES,
    UDA,
    SemiSupervisedWrapper,
    tsa_mask,
    tsa_threshold,
    uda_consistency_loss,
)

__all__ = [
    "DEFAULT_NOISE",
    "PSEUDO_LABEL_MODES",
    "MASK_RULES",
    "TSA_SCHEDULES",
    "UDA",
    "MetaPseudoLabels",
    "PseudoLabelModel",
    "PseudoLabels",
    "ReducedMetaPseudoLabels",
    "SemiSupervisedWrapper",
    "StudentWaitSchedule",
    "alpha_ramp",
    "balance_classes",
    "finetune_student",
    "noisy_student",
    "pseudo_label",
    "reduced_teacher_head",
    "round_dir",
    "tsa_mask",
    "tsa_threshold",
    "uda_consistency_loss",
]
