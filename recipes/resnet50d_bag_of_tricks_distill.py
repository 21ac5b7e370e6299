"""`resnet50d_bag_of_tricks` + knowledge distillation from a ResNet-152-D teacher, T = 20.

He et al., CVPR 2019, §5.3 (Table 6): the teacher is a pretrained ResNet-152-D trained with cosine
decay and label smoothing; the student's loss is the hard-label loss plus T² times the
cross-entropy against the teacher's softened outputs (Hinton et al. 2015), T = 20. With
`distill_alpha = 0.5` both terms get weight 0.5 (the paper's equal weighting, halved).

The teacher's trained weights are required: `--set teacher_weights=PATH` (a `.keras` or
`.weights.h5` file of `resnet152d` with 1000 classes), e.g. the output of training
`resnet50d_bag_of_tricks --set model=resnet152d`.
"""

from keras_cnn.recipes import resnet50d_bag_of_tricks

from keras_cnn.training.config import merge


def config():
    return merge(resnet50d_bag_of_tricks.config(), {
        "distill": {"teacher": "resnet152d", "temperature": 20.0, "alpha": 0.5},
    })
