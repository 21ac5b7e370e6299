"""`resnet50d_bag_of_tricks` + mixup: α = 0.2 and 200 epochs (Bag of Tricks §5.4, Table 6).

He et al., CVPR 2019: "we choose α = 0.2 ... increase the number of epochs from 120 to 200
because the mixed examples ask for a longer training progress to converge better".
"""

from keras_cnn.recipes import resnet50d_bag_of_tricks

from keras_cnn.training.config import merge


def config():
    return merge(resnet50d_bag_of_tricks.config(), {"augment": {"mixup_alpha": 0.2}, "schedule": {"epochs": 200}})
