"""A process that stops reading the task's batch iterator in the middle of an epoch
exits cleanly: fairseq's background loader thread is stopped before the interpreter
finalizes (fairseq_seqvae.data.background_loading). Without that, a loader caught inside a
torch op that released the GIL aborts the process ("terminate called without an active
exception", SIGABRT) after its work is done, as a fairseq-train run that reached
--max-update mid-epoch occasionally did."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # cli_utils, package or not
import cli_utils as cu  # noqa: E402

# Reads one batch from the task's buffered training iterator, whose collater is made slow
# with GIL-free matrix products so that the loader thread is inside one when Python exits.
SCRIPT = """
import sys
import torch
sys.path.insert(0, {tests!r})
import cli_utils as cu
from fairseq import tasks

import fairseq_seqvae  # noqa: F401  (what --user-dir imports)

torch.set_num_threads(1)
cfg = cu.train_config({data!r}, {save!r})
task = tasks.setup_task(cfg.task)
task.load_dataset("train")
dataset = task.dataset("train")
collate, a = dataset.collater, torch.randn(400, 400)

def slow_collater(samples):
    for _ in range(5):
        torch.mm(a, a)
    return collate(samples)

dataset.collater = slow_collater
itr = task.get_batch_iterator(dataset=dataset, max_sentences=1, data_buffer_size=2)
next(itr.next_epoch_itr(shuffle=False))
print("read one batch")
"""


def test_exit_mid_epoch_stops_the_loader_thread(tmp_path):
    data = cu.binarized_synthetic(tmp_path / "corpus", 50, 10)
    script = tmp_path / "read_one_batch.py"
    script.write_text(SCRIPT.format(tests=os.path.dirname(os.path.abspath(__file__)),
                                    data=str(data), save=str(tmp_path / "save")))
    # without the exit hook, most runs of this script abort; three clean exits in a row
    # would happen by chance only about once in 300 tries
    for _ in range(3):
        proc = cu.run([sys.executable, script], tmp_path)
        assert "read one batch" in proc.stdout
        assert "terminate called" not in proc.stderr
