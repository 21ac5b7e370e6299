"""EfficientNet-B0 on ImageNet with the EfficientNet paper's training settings.

Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks", ICML 2019,
§5.2: RMSProp with decay 0.9 and momentum 0.9, batch-norm momentum 0.99, weight decay 1e-5 (an
L2 term in the reference TPU code's loss, `weight_decay * sum(l2_loss)`: `weight_decay_mode` "l2"),
initial learning rate 0.256 (for a batch of 4096) decayed by 0.97 every 2.4 epochs, SiLU,
AutoAugment, stochastic depth with survival probability 0.8 (drop-path 0.2) and dropout 0.2 for
B0 (rising linearly to 0.5 for B7: `keras_cnn.models.efficientnet.SCALING`). From the reference
TPU code: RMSProp epsilon 1e-3, 5 warmup epochs, 350 epochs, label smoothing 0.1, weight EMA
0.9999 used for evaluation. RandAugment (2 ops, magnitude 9; Cubuk et al. 2020) stands in for
AutoAugment, as in the later EfficientNet checkpoints. Set `image_size` for B1-B7 (240 ... 600).
"""


def config():
    return {
        "model": "efficientnet_b0",
        "model_args": {"bn_momentum": 0.99, "drop_path_rate": 0.2, "dropout": 0.2},
        "data": {"dataset": "imagenet", "image_size": 224},
        "augment": {"randaugment": (2, 9)},
        "schedule": {
            "epochs": 350,
            "batch_size": 4096,
            "name": "exponential",
            "args": {"decay_rate": 0.97, "decay_epochs": 2.4},
            "warmup_epochs": 5,
        },
        "optim": {
            "name": "rmsprop",
            "rho": 0.9,
            "momentum": 0.9,
            "epsilon": 1e-3,
            "learning_rate": 0.256,
            "base_batch_size": 4096,
            "weight_decay": 1e-5,
            "no_bias_decay": True,
            "ema": 0.9999,
        },
        "loss": {"label_smoothing": 0.1},
    }
