"""Meta Pseudo Labels on SVHN-1K: the CIFAR-10-4K recipe on SVHN with 1,000 labels.

Pham et al., "Meta Pseudo Labels", CVPR 2021 (arXiv:2003.10580), Table 2: 98.01 ± 0.07 % test
accuracy with 1,000 labels, WRN-28-2 as for CIFAR-10-4K. The released code
(google-research/meta_pseudo_labels) ships commands for CIFAR-10-4000 and ImageNet-10% only, so
this recipe is `mpl_cifar10_4k` (its sources and deviations) with SVHN's split (100 labels per
class, all 73,257 training images unlabeled) — an assumption, not a transcription of the
paper's SVHN hyperparameters. SVHN's papers do not flip digits, but keras_cnn's "cifar"
preprocessing (pad-crop + flip) is the only cropping one: a no-flip kind is a follow-up in
`keras_cnn.data`.

    keras-cnn train mpl_svhn_1k --data-dir ~/tensorflow_datasets --set download=True
"""

from keras_cnn.recipes import mpl_cifar10_4k

from keras_cnn.training.config import merge


def config():
    return merge(mpl_cifar10_4k.config(), {"data": {"dataset": "svhn"}, "mpl": {"ssl_split": "svhn_1k"}})
