#!/usr/bin/env python
"""Figures of training runs and latent spaces: the same as the ``seqvae-plot`` command
(``fairseq_seqvae/cli/plot.py``; ``--help`` lists the options)."""

from fairseq_seqvae.cli.plot import main

if __name__ == "__main__":
    main()
