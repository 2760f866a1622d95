#!/usr/bin/env bash
# Verify and binarize Yahoo Answers (Yang et al. 2017, He et al. 2019's copy) for fairseq-train: data-bin/yahoo.
#
# usage: examples/yahoo/prepare.sh (--data DIR | --download) [--dest DIR] [--no-verify] [fairseq-preprocess flags...]
#   --data      directory with yahoo.train.txt, yahoo.valid.txt, yahoo.test.txt (or train.txt, ...)
#   --download  fetch He et al.'s datasets.tar.gz (Google Drive) and take datasets/yahoo_data/ from it
#   --dest      output directory (default data-bin/yahoo); --help lists every option
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
"${SEQVAE_VENV:-$ROOT/.venv}/bin/python" "$ROOT/examples/prepare_data.py" --name yahoo \
    --checksums "$ROOT/examples/yahoo/checksums.txt" --unk-token _UNK \
    --url "https://drive.usercontent.google.com/download?id=1yH3Ufj20R06OX1prPMPS6E3fKSG_2MqN&export=download&confirm=t" \
    "$@"
