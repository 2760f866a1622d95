"""Poolers: turn all encoder hidden states into one feature per sentence.

A pooler is ``fn(states, padding_mask, final) -> pooled`` with
``states`` B x T x C (zeros at pad positions), ``padding_mask`` B x T (True at pad),
``final`` B x C (the final non-pad hidden state of the last layer; a bidirectional
encoder's two directions combined as ``--encoder-merge`` says, like ``states``). It
must ignore pad positions entirely. Register one with ``@register_pooler("name")``
in a new file of this folder.
"""

from fairseq_seqvae.modules.registry import import_folder, make_registry

POOLERS, register_pooler = make_registry("pooler")

import_folder(__file__, __name__)
