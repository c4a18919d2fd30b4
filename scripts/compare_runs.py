#!/usr/bin/env python
"""Compare every training run under an outputs folder in one table.

Finds every run folder below --outputs-dir (runs/<run> and the search trials in
search/<study>/runs/<run>), prints one row per run to stdout and writes <out-dir>/runs.csv
(every column, full-precision numbers, 95% interval bounds as *_low/*_high) and
<out-dir>/runs.md (the printed table). Rows show settings, the best validation PR-AUC and its
phase/epoch, test ROC-AUC and PR-AUC with their 95% CI and the tuned threshold where evaluated
(image level, test_metrics.json), training time and status: completed, running or interrupted,
or broken: <why> for folders with unreadable or incomplete files.

Completed runs that differ only in seed (same settings and split, e.g. from 03_train.py --seeds
0 1 2) are also summarised, one row per recipe with two seeds or more, under "Seed groups": the
mean, sample standard deviation and min-max of each figure (printed, in runs.md and in
<out-dir>/run_groups.csv).
"""
from __future__ import annotations

import logging
from pathlib import Path

from skin_lesion import cli, layout


def build_parser():
    parser = cli.parser(__doc__)
    parser.add_argument("--outputs-dir", metavar="DIR", default=str(layout.OUTPUTS_DIR),
                        help="folder searched for run folders (default: %(default)s)")
    parser.add_argument("--sort", metavar="KEY", default="started",
                        help="column of runs.csv to sort by, e.g. val_pr_auc, test_roc_auc, started; "
                             "metrics and times high to low, names A-Z (default: %(default)s, newest first)")
    parser.add_argument("--out-dir", metavar="DIR",
                        help="where runs.csv, run_groups.csv and runs.md are written (default: the outputs dir)")
    return parser


def main(args) -> int:
    from skin_lesion.evaluation.compare import runs_table, seed_groups, tables_text, write_tables

    table = runs_table(Path(args.outputs_dir), args.sort)
    if table.empty:
        logging.warning("No run folders (with a training_config.json) under %s.", args.outputs_dir)
    groups = seed_groups(table)
    print(tables_text(table, groups), end="")
    broken = int(table["status"].str.startswith("broken").sum())
    written = write_tables(table, groups, Path(args.out_dir or args.outputs_dir))
    logging.info("%d runs (%d broken), %d seed groups -> %s", len(table), broken, len(groups),
                 ", ".join(map(str, written)))
    return 0


if __name__ == "__main__":
    cli.run(build_parser, main, tensorflow=False)
