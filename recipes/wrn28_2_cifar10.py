"""Wide ResNet-28-2 on CIFAR-10.

Zagoruyko & Komodakis, "Wide Residual Networks", BMVC 2016, §3: SGD with Nesterov momentum 0.9,
batch 128, learning rate 0.1 multiplied by 0.2 at epochs 60, 120 and 160, 200 epochs, weight
decay 5e-4 (every parameter), pad-4 random crops and flips. WRN-28-2 is also the backbone of
the semi-supervised CIFAR-10-4K benchmarks (Oliver et al. 2018; MPL, UDA).
"""


def config():
    return {
        "model": "wrn_28_2",
        "data": {"dataset": "cifar10", "image_size": 32},
        "schedule": {
            "epochs": 200,
            "batch_size": 128,
            "name": "step",
            "args": {"boundaries_epochs": (60, 120, 160), "factor": 0.2},
        },
        "optim": {
            "name": "sgd",
            "momentum": 0.9,
            "nesterov": True,
            "learning_rate": 0.1,
            "base_batch_size": None,
            "weight_decay": 5e-4,
            "no_bias_decay": False,
        },
    }
