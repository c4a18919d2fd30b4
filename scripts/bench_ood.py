#!/usr/bin/env python
"""Measure a run's out-of-distribution flag: the share of its test images flagged, and the share
caught of images that are not skin lesions (scikit-image's photographs; flat colours, noise, a
single pixel, a thumbnail), each scored as 06_infer.py scores files.

Needs scikit-image (installed with the tests). Prints one line per non-lesion image and a table
of rates; writes nothing under outputs/.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from skin_lesion import cli
from skin_lesion.defaults import PREDICTION_BATCH


def build_parser():
    parser = cli.parser(__doc__)
    cli.add_run_arguments(parser)
    return parser


def main(args) -> int:
    import pandas as pd

    from skin_lesion.evaluation.non_lesions import constructed_images, photographs, write_png_folder
    from skin_lesion.serving.inference import infer
    from skin_lesion.serving.predictor import load_predictor
    from skin_lesion.serving.splits import run_split_images, score_split

    run = cli.open_run(args)
    predictor = load_predictor(run)
    if predictor.ood is None:
        raise SystemExit(f"{run.root} has no out-of-distribution flag; train it again.")
    test = run_split_images(run, "test", predictor.img_size)
    test_flags = [bool(reason) for reason in score_split(predictor, test, PREDICTION_BATCH).ood_reasons]
    rows = [("real test lesions (flagged: false alarms)", sum(test_flags), len(test_flags))]
    with tempfile.TemporaryDirectory() as scratch:
        for kind, images in (("photographs (scikit-image)", photographs()), ("constructed non-images", constructed_images())):
            folder = Path(scratch) / kind.split()[0]
            write_png_folder(images, folder)
            infer(predictor, folder, folder / "scored.csv")
            scored = pd.read_csv(folder / "scored.csv").fillna({"ood_reason": ""})
            for row in scored.itertuples():
                print(f"  {Path(row.path).name:26s} score {row.malignant_score:.3f}  distance "
                      f"{row.ood_distance:7.1f}  {row.ood_reason or 'NOT FLAGGED'}")
            rows.append((kind, int(scored["out_of_distribution"].sum()), len(scored)))
    print(f"\n{predictor.ood.record['method']}\nthreshold {predictor.ood.threshold:.2f} (flags "
          f"{100 * predictor.ood.record['flagged']['val']:.1f} % of validation images)\n")
    print("| images | flagged | share |\n| --- | --- | --- |")
    for kind, flagged, total in rows:
        print(f"| {kind} | {flagged} of {total} | {100 * flagged / total:.1f} % |")
    return 0


if __name__ == "__main__":
    cli.run(build_parser, main)
