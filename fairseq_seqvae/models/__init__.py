from fairseq_seqvae.models import seqvae_lstm  # noqa: F401
