"""ResNet-50-D on ImageNet with every Bag of Tricks training refinement.

He et al., "Bag of Tricks for Image Classification with Convolutional Neural Networks", CVPR 2019:
the efficient-training setting of §3 (batch 1024, linear scaling rule lr = 0.1 x 1024 / 256 = 0.4,
5 warmup epochs, zero-γ, no bias decay, FP16) with ResNet-D (§4) trained by the refinements of
§5 (cosine decay over 120 epochs, label smoothing ε = 0.1); Table 6 row "+ label smoothing"
(ResNet-50-D 78.31 % top-1 with cosine + label smoothing, before distillation and mixup).
`precision="auto"` is the paper's FP16 on GPUs (bf16 on TPUs, which have no fp16). Optimizer as
§2.1: Nesterov accelerated gradient (momentum 0.9) with weight decay 1e-4 as L2 in the gradient
(MXNet's `wd`, `weight_decay_mode="l2"`), on the weights only (§3.1 no bias decay). Augmentation
as §2.1: Inception-style random-resized crops and flips, then hue/saturation/brightness scaled
by coefficients from [0.6, 1.4] and PCA lighting noise N(0, 0.1) — the authors' GluonCV code
(`RandomColorJitter(brightness=0.4, contrast=0.4, saturation=0.4)`, `RandomLighting(0.1)`):
`color_jitter=0.4` and `pca_lighting=0.1` here (`keras_cnn.data.ColorJitter` / `PCALighting`;
GluonCV jitters contrast where the paper's text says hue, and so does this recipe). Eval
resizes to 256 and center-crops 224.

Derived recipes: `resnet50d_bag_of_tricks_mixup` (α = 0.2, 200 epochs) and
`resnet50d_bag_of_tricks_distill` (ResNet-152-D teacher, T = 20).
"""


def config():
    return {
        "model": "resnet50d",
        "model_args": {"zero_gamma": True},
        "data": {"dataset": "imagenet", "image_size": 224, "crop_fraction": 0.875},
        "schedule": {"epochs": 120, "batch_size": 1024, "name": "cosine", "warmup_epochs": 5},
        "optim": {
            "name": "sgd",
            "momentum": 0.9,
            "nesterov": True,
            "learning_rate": 0.1,
            "base_batch_size": 256,
            "weight_decay": 1e-4,
            "weight_decay_mode": "l2",
            "no_bias_decay": True,
        },
        "loss": {"label_smoothing": 0.1},
        "augment": {"color_jitter": 0.4, "pca_lighting": 0.1},
        "run": {"precision": "auto"},
    }
