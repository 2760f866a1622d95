#!/usr/bin/env bash
# Verify and binarize Yelp (Yang et al. 2017, He et al. 2019's copy) for fairseq-train, labels split off: data-bin/yelp.
#
# usage: examples/yelp/prepare.sh (--data DIR | --download) [--dest DIR] [--no-verify] [fairseq-preprocess flags...]
#   --data      directory with yelp.train.txt, yelp.valid.txt, yelp.test.txt (or train.txt, ...), "label<TAB>text" lines
#   --download  fetch He et al.'s datasets.tar.gz (Google Drive) and take datasets/yelp_data/ from it
#   --dest      output directory (default data-bin/yelp); labels go to <dest>/text/<split>.labels
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
"${SEQVAE_VENV:-$ROOT/.venv}/bin/python" "$ROOT/examples/prepare_data.py" --name yelp \
    --checksums "$ROOT/examples/yelp/checksums.txt" --unk-token _UNK --labels \
    --url "https://drive.usercontent.google.com/download?id=1yH3Ufj20R06OX1prPMPS6E3fKSG_2MqN&export=download&confirm=t" \
    "$@"
