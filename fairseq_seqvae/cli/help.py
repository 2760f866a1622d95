"""``seqvae-help``: fairseq-train's full option list for this plugin.

``fairseq-train --help`` cannot show plugin options: fairseq 0.12.2 handles --help
before it adds the task, model and criterion options (fairseq issue #701). This
prints the parser fairseq-train builds for our task, architecture and criterion.

    seqvae-help                              # --arch seqvae_lstm, --criterion seqvae_elbo
    seqvae-help --arch seqvae_lstm_yahoo     # fairseq-train arguments, without the data dir
"""

import sys

from fairseq import options

from fairseq_seqvae.cli.fairseq_commands import CRITERION, PLUGIN_DIR, TASK

DEFAULTS = {
    "--user-dir": PLUGIN_DIR,
    "--task": TASK,
    "--arch": "seqvae_lstm",
    "--criterion": CRITERION,
}


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    argv = [a for a in argv if a not in ("-h", "--help")]
    for flag, value in DEFAULTS.items():
        if flag not in argv:
            argv += [flag, value]
    argv = ["DATA"] + argv  # fairseq's parser requires the positional data directory
    parser = options.get_training_parser()
    options.parse_args_and_arch(parser, input_args=argv)
    print(parser.format_help())


if __name__ == "__main__":
    main()
