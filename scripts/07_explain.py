#!/usr/bin/env python
"""Show where a trained model looked: Grad-CAM (or saliency) maps over the images it scored.

By default the run's best model explains its most telling test images — for binary models the
most confident true positives, false positives, false negatives and true negatives at the tuned
threshold, for multi-class models the most confident correct and wrong predictions per diagnosis —
into <run>/explain/: one grid per group (image | heatmap, with the true label, the score and
the threshold), one PNG per image and a CSV listing them. --images explains chosen files,
folders or CSV lists instead (as 06_infer.py reads them), into --out-dir if given; --model-file
explains with a copied .h5 or a .keras export (into <outputs-dir>/model_files/<name>/explain/);
SavedModel, TFLite and ONNX exports have no gradients here and cannot be explained.
"""
from __future__ import annotations

from pathlib import Path

from skin_lesion import cli
from skin_lesion.errors import ConfigError
from skin_lesion.layout import ModelFileLayout

METHODS = ("gradcam", "saliency")


def build_parser():
    parser = cli.parser(__doc__)
    cli.add_run_arguments(parser)
    parser.add_argument("--model-file", metavar="MODEL", help="explain with this .h5 or .keras model instead of a run's")
    parser.add_argument("--images", nargs="+", metavar="PATH",
                        help="explain these images, folders or CSV lists instead of test images")
    parser.add_argument("--metadata", metavar="CSV",
                        help="HAM10000-style metadata for --images, for models that use it")
    parser.add_argument("--method", choices=METHODS, default="gradcam",
                        help="gradcam (class activation of the last feature map) or saliency (input "
                             "gradients) (default: %(default)s)")
    parser.add_argument("--per-group", type=cli.positive_int, default=4,
                        help="test images explained per group (default: %(default)s)")
    parser.add_argument("--out-dir", metavar="DIR",
                        help="folder for explanations of --images (default: the run's or the model file's explain/)")
    parser.add_argument("--force", action="store_true", help="replace earlier explanations")
    return parser


def check(args) -> None:
    """Before TensorFlow starts: what to explain and with which model."""
    if args.model_file and not args.images:
        raise ConfigError("--model-file has no test split of its own: give the images to explain with --images.")
    if args.out_dir and not args.images:
        raise ConfigError("--out-dir is for --images; the test cases are explained into <run>/explain/.")
    if args.model_file:
        cli.require_model(args, explained=True)
    else:
        cli.open_run(args)
    cli.require_inputs(args.images or [], "--images")
    cli.require_inputs([args.metadata] if args.metadata else [], "--metadata", cli.METADATA_CSV)


def images_out_dir(args, run) -> Path:
    """Where explanations of --images go: --out-dir, else the run's or the model file's explain/."""
    if args.out_dir:
        return Path(args.out_dir)
    return ModelFileLayout(args.model_file, args.outputs_dir).explain_dir if args.model_file else run.explain_dir


def main(args) -> int:
    from skin_lesion.explanation.figures import explain_images, explain_test_cases
    from skin_lesion.serving.predictor import load_predictor

    run = None if args.model_file else cli.open_run(args)
    predictor = load_predictor(run, args.model_file and Path(args.model_file))
    if args.images:
        explain_images(predictor, [Path(p) for p in args.images], images_out_dir(args, run), args.method,
                       args.metadata and Path(args.metadata), args.force)
    else:
        explain_test_cases(run, predictor, args.method, args.per_group, args.force)
    return 0


if __name__ == "__main__":
    cli.run(build_parser, main, check=check)
