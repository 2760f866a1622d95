"""Optimizers registered with fairseq (``--optimizer``)."""

from fairseq_seqvae.optim import encoder_decoder  # noqa: F401
