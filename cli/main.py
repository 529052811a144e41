"""The `riskpipe` command line: one subcommand per user task.

Each room of riskpipe registers its own subcommands (COMMAND_MODULES); they
import TensorFlow, TFX and Beam only inside their handlers, so `riskpipe
--help` stays fast. Library code raises plain exceptions; this is the one place
that turns them into a message and an exit code (EXIT_CODES).
"""
import argparse
import importlib
import sys

from common import runtime
from common.errors import DataError, UsageError

# Before any module below can import TensorFlow (Beam workers inherit it).
runtime.use_keras_2()

COMMAND_MODULES = (
    "cli.datagen_commands",
    "cli.pipeline_commands",
    "cli.kubeflow_commands",
    "cli.serving_commands",
    "cli.engine_commands",
    "cli.ledger_commands",
    "cli.monitor_commands",
)
# A bad argument, flag or config value exits 2 (as argparse does); bad data or
# a failed data gate exits 1.
EXIT_CODES = {UsageError: 2, DataError: 1}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="riskpipe",
        description="riskpipe: TFX risk-scoring pipeline, model server and risk engine.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    runtime.quiet_startup(verbose=getattr(args, "verbose", False))
    sys.unraisablehook = runtime.skip_tensorflow_teardown_errors
    try:
        return int(args.func(args) or 0)
    except tuple(EXIT_CODES) as err:
        print(f"riskpipe {args.command}: error: {err}", file=sys.stderr)
        return _exit_code(err)
    except KeyboardInterrupt:
        return 130


def _exit_code(err: Exception) -> int:
    """The exit code of the error, or of the EXIT_CODES error it subclasses."""
    return next(code for kind, code in EXIT_CODES.items() if isinstance(err, kind))


if __name__ == "__main__":
    sys.exit(main())
