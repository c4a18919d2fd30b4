"""Skin-lesion classification on HAM10000 with TensorFlow/Keras."""
from pathlib import Path

from setuptools import find_packages, setup

requirements = [
    line.strip()
    for line in Path(__file__).with_name("requirements.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#")
]

setup(
    name="skin-lesion-cnn",
    version="0.2.0",
    description="Lesion-level HAM10000 splits, fast tf.data pipelines and transfer learning "
                "for dermoscopic skin-lesion classification",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    package_dir={"": "src"},
    packages=find_packages("src"),
    install_requires=requirements,
    extras_require={"test": ["pytest>=8", "pytest-xdist>=3", "playwright>=1.45",
                             "scikit-image>=0.22"]},  # its bundled photographs test the OOD flag
)
