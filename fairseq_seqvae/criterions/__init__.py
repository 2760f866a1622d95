from fairseq_seqvae.criterions import seqvae_elbo  # noqa: F401
