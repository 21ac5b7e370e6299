from setuptools import find_packages, setup

setup(
    name="keras_cnn",
    version="0.1.0",
    description="Convolutional image classifiers and their training methods for Keras 3",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    # Recipes live in the top-level `recipes/` folder (configs as code, beside the package) and
    # install as `keras_cnn.recipes`, so `keras-cnn train NAME` finds them after any install.
    packages=find_packages(include=["keras_cnn", "keras_cnn.*"]) + ["keras_cnn.recipes"],
    package_dir={"keras_cnn.recipes": "recipes"},
    # ImageNet's class names, so `keras-cnn predict` names classes offline.
    package_data={"keras_cnn.data": ["imagenet_classes.txt"]},
    python_requires=">=3.10",
    install_requires=[
        "tensorflow>=2.16",
        # keras.distillation (knowledge distillation) and BackupAndRestore(double_checkpoint=...)
        "keras>=3.12",
        "numpy",
        "scikit-learn",  # ships the UCI digits, the embedded offline dataset
        "tensorflow-datasets",
        "tensorboard",  # keras-cnn train's TensorBoard logs (not a dependency of every TF wheel)
    ],
    extras_require={
        "dev": ["pytest>=7", "pytest-xdist", "hypothesis>=6", "ruff", "matplotlib"],  # matplotlib: tools' figures
        # keras-cv's augmentation layers plug into keras_cnn.data pipelines.
        "cv": ["keras-cv"],
        # curves.png in a run directory (keras_cnn.training.run.plot_history); skipped without it.
        "plot": ["matplotlib"],
        # LiteRT's TFLite interpreter (keras_cnn.export); without it tf.lite.Interpreter runs the model.
        "litert": ["ai-edge-litert"],
        # `keras-cnn export --format onnx`: the converter (tf2onnx, onnx) and the runtime of its check.
        "onnx": ["tf2onnx", "onnx", "onnxruntime"],
        # tools/benchmark.py's timm column (tools/torch_worker.py), best in a venv without TensorFlow.
        "bench-torch": ["torch", "timm"],
    },
    entry_points={"console_scripts": ["keras-cnn=keras_cnn.cli:main"]},
    license="Apache-2.0",
)
