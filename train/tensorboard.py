"""``make tensorboard``: open TensorBoard on the training runs of the configured ``{runs}`` folder.

    python -m train.tensorboard [--config data/config.toml] [--set paths.root=data/demo] [-- --port 6007 ...]

Arguments after ``--`` go to TensorBoard unchanged. ``SET`` reaches this command as it reaches every stage
(values with spaces intact), so ``make tensorboard SET=paths.root=data/demo`` opens the demo's runs.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Sequence

from data.core.cli import run, stage_parser
from data.core.config import config_from_args
from data.core.contracts import RUNS
from data.core.errors import InputError


def tensorboard_command(runs_dir: Path, extra: Sequence[str]) -> list[str]:
    """The TensorBoard command line for ``runs_dir``: this environment's ``tensorboard`` beside Python."""
    beside = Path(sys.executable).with_name("tensorboard")
    program = str(beside) if beside.is_file() else shutil.which("tensorboard")
    if program is None:
        raise InputError("tensorboard is not installed in this environment: run `make install`")
    if not runs_dir.is_dir():
        raise InputError(f"no training runs in {runs_dir}: run `make train` first (or point paths.root elsewhere)")
    return [program, "--logdir", str(runs_dir), *extra]


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (``make tensorboard``); replaces this process with TensorBoard."""
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    args = stage_parser("train.tensorboard", __doc__).parse_args(own)

    def body() -> int:
        command = tensorboard_command(config_from_args(args).path(RUNS), extra)
        print(f"tensorboard on {command[2]}: stop it with Ctrl-C", flush=True)
        os.execv(command[0], command)
        return 0  # not reached: execv replaces this process

    return run(body)


if __name__ == "__main__":
    raise SystemExit(main())
