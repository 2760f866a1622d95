"""``seqvae-help``: fairseq-train's options for this plugin, the plugin's own first.

``fairseq-train --help`` cannot show plugin options: fairseq 0.12.2 handles --help
before it adds the task, model and criterion options (fairseq issue #701). This
builds the parser fairseq-train builds for our task, architecture and criterion, and
prints the architectures and the plugin's options (model, criterion, task) before
fairseq's own.

    seqvae-help                              # --arch seqvae_lstm, --criterion seqvae_elbo
    seqvae-help --arch seqvae_lstm_yahoo     # defaults of that architecture
    seqvae-help --plugin-only                # without fairseq's own options
"""

import argparse
import copy
import dataclasses
import sys
from typing import List

from fairseq import options
from fairseq.models import ARCH_MODEL_NAME_REGISTRY

from fairseq_seqvae.cli import quiet_libraries
from fairseq_seqvae.cli.fairseq_commands import CRITERION, PLUGIN_DIR, TASK
from fairseq_seqvae.criterions.seqvae_elbo import SeqVAEELBOConfig
from fairseq_seqvae.models.seqvae_lstm import SeqVAELSTMConfig
from fairseq_seqvae.tasks.seqvae_language_modeling import SeqVAELanguageModelingConfig

MODEL = "seqvae_lstm"
DEFAULTS = {
    "--user-dir": PLUGIN_DIR,
    "--task": TASK,
    "--arch": MODEL,
    "--criterion": CRITERION,
}
USAGE = "seqvae-help [--arch ARCH] [--plugin-only] [fairseq-train options]"
# the plugin's sections: (title, config whose fields they hold)
SECTIONS = [
    (f"model options (--arch {MODEL} and its named architectures)", SeqVAELSTMConfig),
    (f"criterion options (--criterion {CRITERION})", SeqVAEELBOConfig),
    (f"task options (--task {TASK})", SeqVAELanguageModelingConfig),
]


def architectures() -> List[str]:
    """The named architectures of the seqvae_lstm model, the model's own name first."""
    names = [a for a, m in ARCH_MODEL_NAME_REGISTRY.items() if m == MODEL]
    return sorted(names, key=lambda a: (a != MODEL, a))


def own_fields(config) -> List[str]:
    """The option names (dests) a plugin config adds; fields interpolated from
    fairseq's own config (``${...}``) are fairseq's options."""
    return [f.name for f in dataclasses.fields(config)
            if not f.name.startswith("_") and not str(f.default).startswith("${")]


def format_help(parser: argparse.ArgumentParser, arch: str) -> str:
    actions = [a for group in parser._action_groups for a in group._group_actions]
    by_dest = {a.dest: a for a in actions}
    fmt = parser.formatter_class(prog="seqvae-help")
    fmt.add_usage(USAGE, [], [])
    fmt.add_text(
        "The options of fairseq-train with this plugin. Train with: fairseq-train DATA "
        f"--user-dir {PLUGIN_DIR} --task {TASK} --criterion {CRITERION} --arch ARCH "
        "[options]; DATA is a fairseq-preprocess --only-source output directory."
    )
    fmt.start_section("architectures (--arch)")
    fmt.add_text(", ".join(architectures()) + f" (defaults shown below: {arch})")
    fmt.end_section()
    shown = {"arch", "task", "criterion", "user_dir", "help"}
    for title, config in SECTIONS:
        dests = [d for d in own_fields(config) if d in by_dest]
        fmt.start_section(title)
        fmt.add_arguments([by_dest[d] for d in dests])
        fmt.end_section()
        shown.update(dests)
    fmt.start_section("seqvae-help")
    fmt.add_arguments([by_dest[d] for d in ("help", "plugin_only") if d in by_dest])
    fmt.end_section()
    plugin_text = fmt.format_help()
    if by_dest["plugin_only"].default:
        return plugin_text
    rest = parser.formatter_class(prog="fairseq-train")
    rest.add_text("fairseq's own options (fairseq-train)")
    for group in parser._action_groups:
        left = [a for a in group._group_actions if a.dest not in shown]
        if left:
            rest.start_section(group.title)
            rest.add_arguments(left)
            rest.end_section()
    return plugin_text + "\n" + rest.format_help()


def main(argv=None):
    quiet_libraries()
    argv = list(sys.argv[1:] if argv is None else argv)
    argv = [a for a in argv if a not in ("-h", "--help")]
    plugin_only = "--plugin-only" in argv
    argv = [a for a in argv if a != "--plugin-only"]
    for flag, value in DEFAULTS.items():
        if flag not in argv:
            argv += [flag, value]
    arch = argv[argv.index("--arch") + 1]
    if arch not in architectures():
        sys.exit(f"seqvae-help: error: --arch {arch} is not a {MODEL} architecture; "
                 f"choose from {', '.join(architectures())}")
    parser = options.get_training_parser()
    parser.add_argument("--plugin-only", action="store_true", default=plugin_only,
                        help="show only the plugin's options, not fairseq's own")
    # fairseq's parser requires the positional data directory; it is not shown
    options.parse_args_and_arch(parser, input_args=["DATA"] + argv)
    for action in parser._actions:
        if action.dest == "arch":
            action.help = f"model architecture: one of {', '.join(architectures())}"
    print(format_help(parser, arch))


if __name__ == "__main__":
    main()
