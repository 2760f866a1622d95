"""The command-line tools: seqvae-eval, seqvae-generate, seqvae-compare, seqvae-plot and
seqvae-help. They parse arguments and print; the work is done by the package around them."""
