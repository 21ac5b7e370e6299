"""SqueezeNet 1.0 on ImageNet with the authors' released Caffe solver.

Iandola et al., "SqueezeNet: AlexNet-level accuracy with 50x fewer parameters and <0.5MB model
size", 2016, and its reference solver (github.com/forresti/SqueezeNet, SqueezeNet_v1.0/
solver.prototxt): batch 512 (32 x iter_size 16), base lr 0.04, "poly" decay with power 1.0
(linear to zero) over 170,000 iterations (= 68 epochs), momentum 0.9, weight decay 2e-4 on every
parameter; 50 % dropout after fire9 (the model's default).
"""


def config():
    return {
        "model": "squeezenet1_0",
        "data": {"dataset": "imagenet", "image_size": 224},
        "schedule": {"epochs": 68, "batch_size": 512, "name": "poly", "args": {"power": 1.0}},
        "optim": {
            "name": "sgd",
            "momentum": 0.9,
            "learning_rate": 0.04,
            "base_batch_size": None,
            "weight_decay": 2e-4,
            "no_bias_decay": False,
        },
    }
