"""The `nmmfast` command line: one subcommand per stage of the study.

Each subcommand lives in the module that owns the concept and exposes two functions:
`configure_parser(parser)` adds its arguments and `run_cli(args) -> int` runs it. The module is
imported only when its subcommand runs, so `nmmfast info` does not pay for torch or transformers.

A user error (`nmmfast.errors.UserError`, `OSError`, `ValueError`) ends the command with one line,
`nmmfast <command>: <message>`, and exit status 2; `--debug` anywhere on the command line shows
the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module that implements it, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "info": ("nmmfast._info_cli", "what was built (CUDA kernels, architectures), what is usable"),
    "synth": ("nmmfast.data.synth", "generate the SynNMM corpus: poses, manifest, planted NMMs"),
    "import": (
        "nmmfast.data.importers",
        "import poses (Uni-Sign pkl, .pose, Pose86K, npz), labels",
    ),
    "store": (
        "nmmfast.data.integrity",
        "check a pose store record by record, or copy its intact samples to a new one",
    ),
    "split": ("nmmfast.data.partitions", "build the control / signer / sentence partitions"),
    "train": ("nmmfast.train", "train the pose→text model (CSLR or SLT) on a corpus partition"),
    "convert-checkpoint": (
        "nmmfast.model.convert",
        "a run directory from a Uni-Sign checkpoint and its local mT5 directory",
    ),
    "export": ("nmmfast.model.export", "a run's pose encoder to ONNX, checked under ONNX Runtime"),
    "decode": ("nmmfast.decode", "beam-decode a split with a trained run; JSON Lines predictions"),
    "evaluate": ("nmmfast.evaluate", "score predictions: WER, BLEU-1..4, seen rate, overlap"),
    "attribute": ("nmmfast.attribution.job", "Integrated Gradients: joint and region shares"),
    "probe": ("nmmfast.probes.cli", "tracking failure, counterfactual regions, signer identity"),
    "extract": ("nmmfast.extract._cli", "videos -> whole-body poses (YOLOX + RTMPose) in a store"),
    "merge-stores": ("nmmfast.data.merge", "pose stores (e.g. extract's rank shards) into one"),
    "study": (
        "nmmfast.study",
        "decode, score, attribute and probe runs on any partitions, with the report",
    ),
    "demo": ("nmmfast.demo", "the whole study on the built-in SynNMM corpus, with the report"),
    "report": (
        "nmmfast.report.build",
        "the HTML report (and CSV/JSON tables) of a study directory",
    ),
    "bench": ("nmmfast.bench", "run the benchmarks against their peers; one summary table"),
}


def _top_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nmmfast",
        description="Diagnose how pose-based sign-language models use non-manual markers.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of a user error (any position)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def _one_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return "; ".join(lines) or type(error).__name__


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [arg for arg in argv if arg != "--debug"]
    top = _top_parser()
    if not argv or argv[0] not in SUBCOMMANDS:
        args = top.parse_args(argv)
        if args.version:
            from nmmfast import __version__

            print(__version__)
            return 0
        top.print_help()
        return 1
    name = argv[0]
    module = importlib.import_module(SUBCOMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"nmmfast {name}", description=SUBCOMMANDS[name][1])
    module.configure_parser(parser)
    args = parser.parse_args(argv[1:])
    from nmmfast.errors import UserError

    try:
        return int(module.run_cli(args) or 0)
    except (UserError, OSError, ValueError) as error:
        if debug:
            raise
        print(f"nmmfast {name}: {_one_line(error)}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
