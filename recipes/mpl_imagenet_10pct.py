"""Meta Pseudo Labels on ImageNet-10%: ResNet-50 teacher and student, UDA, 700k steps.

Pham et al., "Meta Pseudo Labels", CVPR 2021 (arXiv:2003.10580), Table 3: 73.89 % top-1 with
10 % of the labels. The numbers are the released code's ImageNet-10% command
(github.com/google-research/google-research/tree/master/meta_pseudo_labels, README; the flag
given twice there, `train_batch_size`, is taken at its last value):

- ResNet-50 teacher and student (ReLU: the release's `resnet_block` uses `leaky=0.`), batch norm
  with the release's default *`batch_norm_decay=0.99`, *`batch_norm_epsilon=1e-3`,
  `dense_dropout_rate=0.1`, 224 px, Inception crops;
- `train_batch_size=1024` labeled images and `uda_data=15` (mu) x 1,024 unlabeled ones per step;
- `num_train_steps=700000`: 700 epochs of 1,000 steps here;
- Nesterov momentum 0.9, cosine decay; `mpl_student_lr=0.1` and `mpl_teacher_lr=0.15` per 256
  labeled images (0.4 and 0.6 at 1,024), warmups `mpl_student_lr_warmup_steps=5000` and
  `mpl_teacher_lr_warmup_steps=5000` (5 epochs), `mpl_student_lr_wait_steps=20000` (20 epochs);
- `weight_decay=1e-4` (L2 in the gradient, as the release), `label_smoothing=0.1`,
  `ema_decay=0.999`, `grad_bound=5` (global norm; the release clips the gradient *with* the L2
  term, keras_cnn adds the term after clipping: see `keras_cnn.ssl.mpl`);
- UDA: `uda_weight=20` ramped over `uda_steps=50000` (50 epochs), `uda_temp=0.5`,
  `uda_threshold=0.6` (the release's sharpened `>=` mask).

Deviations as in `mpl_cifar10_4k`: keras_cnn's reference RandAugment (2, 10) for the release's
`augment_magnitude=17`, sampled pseudo-labels; finetuning (not in the release) 8,192 steps at
3e-5 with batch 512, unverified against the paper. ImageNet must be prepared by hand
(`keras_cnn.data`).

    keras-cnn train mpl_imagenet_10pct --strategy tpu --data-dir gs://bucket/tfds --output gs://bucket/runs/mpl
"""


def config():
    return {
        "method": "mpl",
        "model": "resnet50",
        "model_args": {"dropout": 0.1, "bn_momentum": 0.99, "bn_epsilon": 1e-3},
        "data": {"dataset": "imagenet", "image_size": 224},
        "mpl": {
            "ssl_split": "imagenet_10pct",
            "mu": 15,
            "teacher_learning_rate": 0.15,
            "teacher_warmup_epochs": 5,
            "student_wait_epochs": 20,
            "uda_weight": 20.0,
            "uda_temperature": 0.5,
            "uda_threshold": 0.6,
            "uda_ramp_epochs": 50,
            "global_clipnorm": 5.0,
            "pseudo_labels": "sample",
            "finetune_steps": 8192,
            "finetune_learning_rate": 3e-5,
            "finetune_batch_size": 512,
        },
        "augment": {"randaugment": (2, 10)},
        "schedule": {
            "epochs": 700,
            "steps_per_epoch": 1000,
            "batch_size": 1024,
            "name": "cosine",
            "warmup_epochs": 5,
            "validation_freq": 10,
        },
        "optim": {
            "name": "sgd",
            "momentum": 0.9,
            "nesterov": True,
            "learning_rate": 0.1,
            "base_batch_size": 256,
            "weight_decay": 1e-4,
            "no_bias_decay": True,
            "ema": 0.999,
        },
        "loss": {"label_smoothing": 0.1},
    }
