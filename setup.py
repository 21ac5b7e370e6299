from setuptools import find_packages, setup

setup(
    name="keras_cnn",
    version="0.1.0",
    description="Convolutional image classifiers and their training methods for Keras 3",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["keras_cnn", "keras_cnn.*"]),
    python_requires=">=3.10",
    install_requires=["tensorflow>=2.16", "keras>=3.8", "numpy"],
    extras_require={
        "dev": ["pytest>=7", "pytest-xdist", "hypothesis>=6", "ruff"],
    },
    entry_points={"console_scripts": ["keras-cnn=keras_cnn.cli:main"]},
    license="Apache-2.0",
)
