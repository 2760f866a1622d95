"""fairseq-train, run under torchrun by a test, that also writes every rank's model
parameters after each update to ``$SEQVAE_DUMP_DIR/rank<r>.pt``, so the test can check
that all replicas stay identical (fairseq itself saves rank 0's only)."""

import os
import sys

from fairseq_cli.train import cli_main  # first: it sends fairseq's log to stdout

import torch  # noqa: E402
from fairseq.trainer import Trainer  # noqa: E402

_train_step = Trainer.train_step


def train_step_and_dump(self, samples, raise_oom=False):
    out = _train_step(self, samples, raise_oom)
    params = {n: p.detach().clone() for n, p in self.get_model().named_parameters()}
    path = os.path.join(os.environ["SEQVAE_DUMP_DIR"], f"rank{self.data_parallel_rank}.pt")
    torch.save(params, path)
    return out


if __name__ == "__main__":
    Trainer.train_step = train_step_and_dump
    sys.exit(cli_main())
