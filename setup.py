"""fairseq_seqvae: pooled-encoder LSTM VAEs for fairseq (Long, Cao & Cheung 2019)."""

from setuptools import find_packages, setup

setup(
    name="fairseq_seqvae",
    version="0.1.0",
    description=(
        "fairseq plugin: sequence VAEs with pooled encoders that do not suffer "
        "posterior collapse (Long, Cao & Cheung 2019, arXiv 1911.03976)"
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10,<3.13",
    packages=find_packages(include=["fairseq_seqvae", "fairseq_seqvae.*"]),
    # fairseq 0.12.2 itself is installed with --no-deps by scripts/setup.sh (its
    # declared pins of hydra-core<1.1 / omegaconf<2.1 do not work on Python 3.11),
    # so it is not listed here; exact versions live in requirements.txt.
    install_requires=[
        "torch>=2.0",
        "numpy",
        "hydra-core>=1.3,<1.4",
        "omegaconf>=2.3,<2.4",
        "sacremoses",
        "sacrebleu>=1.4.12",
        "tensorboardX",
        "bitarray",
        "regex",
        "tqdm",
        "cffi",
        "cython",
        # seqvae-plot, and seqvae-compare's figures (drawn by default)
        "matplotlib>=3.10",
    ],
    entry_points={
        "console_scripts": [
            "seqvae-help = fairseq_seqvae.cli.help:main",
            "seqvae-compare = fairseq_seqvae.cli.compare:main",
            "seqvae-eval = fairseq_seqvae.cli.evaluate:main",
            "seqvae-generate = fairseq_seqvae.cli.generate:main",
            "seqvae-plot = fairseq_seqvae.cli.plot:main",
        ]
    },
)
