"""DenseNet-BC (L = 100, k = 12) on CIFAR-10 with standard augmentation ("C10+").

Huang et al., "Densely Connected Convolutional Networks", CVPR 2017, §4.2 and Table 2
(DenseNet-BC 100/12: 0.8 M parameters, 4.51 % error on C10+): SGD with Nesterov momentum 0.9,
batch 64, 300 epochs, learning rate 0.1 divided by 10 at 50 % and 75 % of training, weight decay
1e-4 (on every parameter), no dropout with augmentation, pad-4 random crops and flips.
"""


def config():
    return {
        "model": "densenet_bc_100_12",
        "data": {"dataset": "cifar10", "image_size": 32},
        "schedule": {
            "epochs": 300,
            "batch_size": 64,
            "name": "step",
            "args": {"boundaries_epochs": (150, 225), "factor": 0.1},
        },
        "optim": {
            "name": "sgd",
            "momentum": 0.9,
            "nesterov": True,
            "learning_rate": 0.1,
            "base_batch_size": None,
            "weight_decay": 1e-4,
            "no_bias_decay": False,
        },
    }
