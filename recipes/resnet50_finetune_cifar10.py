"""Fine-tuning an ImageNet ResNet-50 on CIFAR-10: new head, frozen phase, then the whole network.

Transfer by fine-tuning (Kornblith, Shlens, Le, "Do Better ImageNet Models Transfer Better?",
CVPR 2019: fine-tuning beats fixed features on every dataset they test, CIFAR-10 included;
Bag of Tricks §6 carries the classification tricks over to transfer). The two-phase schedule
and the batch-normalisation handling follow the Keras transfer-learning guide: the new,
randomly initialised head trains alone for `freeze_epochs` with the backbone frozen (its BN
layers in inference mode, so its ImageNet statistics are kept), then the whole backbone is
unfrozen at a 10x smaller learning rate with BN still in inference mode (`train_bn=False`).
CIFAR images are upsampled to the backbone's 224 px. Our choices, not a paper's table: 2 + 8
epochs, batch 128, SGD with Nesterov momentum 0.9, 0.1 per 256 images for the head and 0.01
for the backbone phase (`unfreeze_learning_rate_factor`), cosine decay per phase, weight decay
1e-4 without bias decay, label smoothing 0.1, dropout 0.2 before the new classifier.

`backbone="imagenet"` loads the keras.applications ResNet-50 weights (downloaded once; place
the file where the error message says when offline). Any trained keras_cnn model works too:
`--set backbone=runs/other/model.keras` (its head is replaced).

    keras-cnn train resnet50_finetune_cifar10 --data-dir ~/tensorflow_datasets --set download=True
"""


def config():
    return {
        "model": "resnet50",
        "model_args": {"dropout": 0.2},
        "transfer": {
            "backbone": "imagenet",
            "freeze_epochs": 2,
            "trainable_stages": "all",
            "unfreeze_learning_rate_factor": 0.1,
            "train_bn": False,
        },
        "data": {"dataset": "cifar10", "image_size": 224, "preprocessing": "imagenet"},
        "schedule": {"epochs": 10, "batch_size": 128, "name": "cosine"},
        "optim": {
            "name": "sgd",
            "momentum": 0.9,
            "nesterov": True,
            "learning_rate": 0.1,
            "base_batch_size": 256,
            "weight_decay": 1e-4,
            "no_bias_decay": True,
        },
        "loss": {"label_smoothing": 0.1},
    }
