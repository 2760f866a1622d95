"""The command-line tools: seqvae-eval, seqvae-generate, seqvae-compare, seqvae-plot and
seqvae-help. They parse arguments and print; the work is done by the package around them."""

import logging


def quiet_libraries() -> None:
    """Warnings and errors only from the libraries this process imports: fairseq's
    speech tasks call ``logging.basicConfig(level=INFO)`` when fairseq is imported, so
    loading a model in-process would print its dictionary and dataset lines, and
    matplotlib its font cache, between a command's own progress lines."""
    logging.getLogger().setLevel(logging.WARNING)
