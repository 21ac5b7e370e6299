"""GoogLeNet (Inception v1) on ImageNet with its two auxiliary classifiers (loss weight 0.3).

Szegedy et al., "Going Deeper with Convolutions", CVPR 2015, §5-§6: the auxiliary losses are
added with weight 0.3 during training and discarded at inference; SGD with momentum 0.9, the
learning rate decreased by 4 % every 8 epochs, Polyak averaging of the weights for the final
model (here EMA 0.9999), and patches of 8 %-100 % of the image area with aspect ratio in
[3/4, 4/3] (the Inception crop). The paper gives no base learning rate or batch; these follow
the BVLC Caffe reproduction (base lr 0.01 for a batch of 32, linearly scaled; weight decay
2e-4; 60 epochs).
"""


def config():
    return {
        "model": "googlenet",
        "model_args": {"aux_logits": True},
        "data": {"dataset": "imagenet", "image_size": 224},
        "schedule": {
            "epochs": 60,
            "batch_size": 256,
            "name": "exponential",
            "args": {"decay_rate": 0.96, "decay_epochs": 8},
        },
        "optim": {
            "name": "sgd",
            "momentum": 0.9,
            "learning_rate": 0.01,
            "base_batch_size": 32,
            "weight_decay": 2e-4,
            "no_bias_decay": False,
            "ema": 0.9999,
        },
    }
