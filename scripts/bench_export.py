#!/usr/bin/env python
"""Compare the exported formats of a run (08_export.py) with its .h5 on this CPU: file size, load
time, one-image latency and batch throughput, printed as the README's Markdown table."""
from __future__ import annotations

from skin_lesion import cli


def build_parser():
    parser = cli.parser(__doc__)
    cli.add_run_arguments(parser)
    parser.add_argument("--batch-size", type=cli.positive_int, default=32, help="images per batch (default: %(default)s)")
    parser.add_argument("--repeats", type=cli.positive_int, default=30,
                        help="one-image calls timed per format; the median is shown (default: %(default)s)")
    return parser


def main(args) -> int:
    from skin_lesion.export.benchmark import measure, models_of, table

    run = cli.open_run(args)
    results = {name: measure(path, args.batch_size, args.repeats)
               for name, path in models_of(run).items()}
    print(table(results, args.batch_size))
    return 0


if __name__ == "__main__":
    cli.run(build_parser, main, check=cli.open_run)
