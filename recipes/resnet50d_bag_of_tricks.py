"""ResNet-50-D on ImageNet with every Bag of Tricks training refinement.

He et al., "Bag of Tricks for Image Classification with Convolutional Neural Networks", CVPR 2019:
the efficient-training setting of §3 (batch 1024, linear scaling rule lr = 0.1 x 1024 / 256 = 0.4,
5 warmup epochs, zero-γ, no bias decay, FP16) with ResNet-D (§4) trained by the refinements of
§5 (cosine decay over 120 epochs, label smoothing ε = 0.1); Table 6 row "+ label smoothing"
(ResNet-50-D 78.31 % top-1 with cosine + label smoothing, before distillation and mixup).
`precision="auto"` is the paper's FP16 on GPUs (bf16 on TPUs, which have no fp16). SGD with
momentum 0.9, weight decay 1e-4 on the weights only. Inception-style random-resized crops and
flips (§2.1); eval resizes to 256 and center-crops 224.

Derived recipes: `resnet50d_bag_of_tricks_mixup` (α = 0.2, 200 epochs) and
`resnet50d_bag_of_tricks_distill` (ResNet-152-D teacher, T = 20).
"""


def config():
    return {
        "model": "resnet50d",
        "model_args": {"zero_gamma": True},
        "dataset": "imagenet",
        "image_size": 224,
        "crop_fraction": 0.875,
        "epochs": 120,
        "batch_size": 1024,
        "optimizer": "sgd",
        "momentum": 0.9,
        "learning_rate": 0.1,
        "base_batch_size": 256,
        "weight_decay": 1e-4,
        "no_bias_decay": True,
        "schedule": "cosine",
        "warmup_epochs": 5,
        "label_smoothing": 0.1,
        "precision": "auto",
    }
