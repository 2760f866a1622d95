"""fairseq plugin: sequence VAEs with pooled encoders (Long, Cao & Cheung 2019).

Importing this package (or passing its directory to ``--user-dir``) registers the
``seqvae_lstm`` model, the ``seqvae_elbo`` criterion, the ``seqvae_language_modeling``
task and the ``encoder_decoder`` optimizer. ``SeqVAE`` is the Python interface to a
trained model (``from fairseq_seqvae import SeqVAE``; ``SeqVAE.from_pretrained``),
imported from ``fairseq_seqvae.hub`` on first use.
"""

from fairseq_seqvae import criterions, models, optim, tasks  # noqa: F401

__version__ = "0.1.0"


def __getattr__(name):
    if name == "SeqVAE":
        from fairseq_seqvae.hub import SeqVAE

        return SeqVAE
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
