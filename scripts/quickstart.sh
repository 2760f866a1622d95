#!/usr/bin/env bash
# Set up the environment, then train a last-state and a max-pooled sequence VAE and compare them.
#
# usage: bash scripts/quickstart.sh [seqvae-compare options]
#   bash scripts/quickstart.sh                      built-in demo corpus, --pooling last vs max
#   bash scripts/quickstart.sh --text my.txt        your text: one sentence per line, space-tokenized
#   bash scripts/quickstart.sh --data-dir DIR       DIR/train.txt and DIR/valid.txt
#   bash scripts/quickstart.sh --help               every option (budget, poolers, arch, --json, ...)
# Checkpoints and logs go to ./quickstart-out (--work-dir DIR to change). Set-up messages go to
# stderr, so `--json > result.json` stays clean.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SEQVAE_VENV:-$ROOT/.venv}"

bash "$ROOT/scripts/setup.sh" >&2
exec "$VENV/bin/python" -m fairseq_seqvae.cli.compare "$@"
