"""Meta Pseudo Labels on CIFAR-10-4K: WRN-28-2 teacher and student, UDA, 300k steps.

Pham, Dai, Xie, Luong, Le, "Meta Pseudo Labels", CVPR 2021 (arXiv:2003.10580), Table 2: 96.11 ±
0.07 % test accuracy with 4,000 labels. The numbers are the released code's
(github.com/google-research/google-research/tree/master/meta_pseudo_labels): the README's
CIFAR-10-4000 command, and `flag_utils.py` defaults for what it does not set (marked *):

- WRN-28-2 teacher and student as the release's `modeling_utils.wrn_block`: leaky ReLU with
  slope 0.2 (`activation="leaky_relu"`), batch norm with *`batch_norm_decay=0.99` and
  *`batch_norm_epsilon=1e-3`, `dense_dropout_rate=0.2` (dropout before the classifier);
- `train_batch_size=128` labeled images and `uda_data=7` (mu) x 128 unlabeled ones per step;
- `num_train_steps=300000`: 300 epochs of 1,000 steps here, so epochs read as thousands of steps;
- Nesterov momentum 0.9 (`optim_type=momentum`), cosine decay to 0 (`lr_decay_type=cosine`);
  learning rates *`mpl_student_lr=0.1` and *`mpl_teacher_lr=0.1` per 256 labeled images (the
  code multiplies by `train_batch_size / 256`: 0.05 at 128), linear warmup
  *`mpl_student_lr_warmup_steps=5000` / *`mpl_teacher_lr_warmup_steps=5000` (5 epochs);
- `mpl_student_lr_wait_steps=3000` (3 epochs with the student's learning rate at 0);
- `weight_decay=5e-4` as the release's L2 in the gradient (`add_weight_decay`: `g + wd * w`,
  batch norm excluded; keras_cnn's `weight_decay_mode="l2"`, the default for SGD),
  `label_smoothing=0.15`, `ema_decay=0.995` (the student's EMA);
- UDA: `uda_weight=8` ramped linearly over `uda_steps=5000` (5 epochs), `uda_temp=0.7`,
  `uda_threshold=0.6` on the sharpened teacher distribution with `>=` (the release's mask);
  *`grad_bound=1e9` (no clipping).

Deviations (keras_cnn's pieces): the strong view is keras_cnn's reference RandAugment (2, 10)
(`keras_cnn.data.RandAugment`, tensorflow/tpu's ops and ranges, Cutout included): the release's
`augment_magnitude=16` extrapolates past the 0-10 scale and its RandAugment applies each chosen
op with a probability drawn from U(0.2, 0.8). Pseudo-labels: drawn from the teacher's
distribution (`pseudo_labels="sample"`, the paper's REINFORCE estimator); the release trains the
student on the teacher's soft probabilities, whose MPL term has zero gradient
(google-research#534), so its teacher never receives the feedback — `--set pseudo_labels=soft`
reproduces that, `--set pseudo_labels=argmax` is MPL-pytorch's choice. Finetuning (not in the release):
8,192 steps at learning rate 3e-5 with batch 512 — values as recalled from the paper's
appendix, not verified against it here.

    keras-cnn train mpl_cifar10_4k --data-dir ~/tensorflow_datasets --set download=True
"""


def config():
    return {
        "method": "mpl",
        "model": "wrn_28_2",
        "model_args": {"dropout": 0.2, "activation": "leaky_relu", "bn_momentum": 0.99, "bn_epsilon": 1e-3},
        "data": {"dataset": "cifar10", "image_size": 32},
        "mpl": {
            "ssl_split": "cifar10_4k",
            "mu": 7,
            "teacher_learning_rate": 0.1,
            "teacher_warmup_epochs": 5,
            "student_wait_epochs": 3,
            "uda_weight": 8.0,
            "uda_temperature": 0.7,
            "uda_threshold": 0.6,
            "uda_ramp_epochs": 5,
            "global_clipnorm": None,
            "pseudo_labels": "sample",
            "finetune_steps": 8192,
            "finetune_learning_rate": 3e-5,
            "finetune_batch_size": 512,
        },
        "augment": {"randaugment": (2, 10)},
        "schedule": {
            "epochs": 300,
            "steps_per_epoch": 1000,
            "batch_size": 128,
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
            "weight_decay": 5e-4,
            "no_bias_decay": True,
            "ema": 0.995,
        },
        "loss": {"label_smoothing": 0.15},
    }
