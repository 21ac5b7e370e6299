"""Noisy Student: EfficientNet-B0 teacher, then noised B0 and B1 students on ImageNet + unlabeled images.

Xie, Luong, Hovy, Le, "Self-training with Noisy Student improves ImageNet classification", CVPR
2020 (arXiv:1911.04252), §3 and the released code (github.com/google-research/noisystudent,
`main.py` flags and `local_scripts/imagenet/*.sh`):

- teacher: EfficientNet-B0 trained on labeled ImageNet (round 0; or pass a trained one with
  `--set teacher_weights=PATH`), predicting on clean images, soft pseudo-labels
  (`teacher_softmax_temp=1`);
- students: equal-or-larger (B0, then B1; `student_models`), each noised with RandAugment
  (2 ops, magnitude 27 of 30 = 9 on keras_cnn's 0-10 scale), dropout 0.5 before the classifier
  and stochastic depth 0.2 (survival 0.8 at the last block), as §3 "Noising Student";
- pseudo-label filtering at confidence 0.3 and class balancing (`filter_unlabel.sh`:
  `min_threshold=0.3`, `num_image=130000` per class for JFT; here the largest class);
- each model at its own resolution (`input_image_size` defaults to the model's: B0 224, B1 240;
  `student_image_sizes`), the teacher predicting at its own;
- training as EfficientNet (`efficientnet_b0_imagenet`): RMSProp 0.9/0.9, epsilon 1e-3, weight
  decay 1e-5 as L2 (`weight_decay * sum(l2_loss)` in the release's loss: `weight_decay_mode="l2"`),
  learning rate 0.016 per 256 images (`base_learning_rate`), batch 4,096 (`train_batch_size`),
  label smoothing 0.1 on the labeled images only (the release's soft pseudo-labels are not
  smoothed), EMA 0.9999, BN momentum 0.99; B0's `train_ratio=2`: 700 epochs with the 0.97 decay
  every 4.8 epochs (`unlabel_ratio=1`). Each round's epoch is one pass over what it trains on
  (labeled + the filtered, balanced pseudo-labeled images), which sizes its schedule.

The paper reports 77.3 % -> 78.8 % top-1 for B0 with 130 M JFT images; JFT is not public.
**Unlabeled default**: `unlabeled="train_images"`, ImageNet's own training images with their
labels dropped (Noisy Student without extra data). Point it elsewhere with
`--set unlabeled=tfds:NAME[:SPLIT]` (any TFDS image dataset, e.g. `tfds:places365_small:train`)
or `--set unlabeled=/path/to/images` (a directory tree of image files). Deviations:
`keras_cnn.ssl.noisy_student` mixes labeled and pseudo-labeled images in one stream and holds
decoded images in memory, so at ImageNet scale the job stops with a clear error above
`max_in_memory_gb` (a streaming round is future work); students are noised by RandAugment on
resized images (no random crops); the release's two streams (unlabeled batch = `unlabel_ratio`
x labeled, B1: 3) become one mixed stream (`keras_cnn.ssl.noisy_student`).

    keras-cnn train noisy_student_efficientnet_b0 --data-dir ~/tensorflow_datasets --set max_in_memory_gb=600
"""

from keras_cnn.recipes import efficientnet_b0_imagenet

from keras_cnn.training.config import merge


def config():
    return merge(efficientnet_b0_imagenet.config(), {
        "method": "noisy_student",
        "model": "efficientnet_b0",
        "model_args": {"bn_momentum": 0.99, "drop_path_rate": 0.2, "dropout": 0.5},
        "noisy_student": {
            "student_models": ("efficientnet_b0", "efficientnet_b1"),
            "student_image_sizes": (224, 240),
            "rounds": 2,
            "unlabeled": "train_images",
            "pseudo_label_mode": "soft",
            "pseudo_label_threshold": 0.3,
            "balance_classes": True,
            "per_class": None,
        },
        "augment": {"randaugment": (2, 9)},
        "schedule": {"epochs": 700, "args": {"decay_rate": 0.97, "decay_epochs": 4.8}},
    })
