from fairseq_seqvae.tasks import seqvae_language_modeling  # noqa: F401
