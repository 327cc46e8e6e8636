"""The `trainwright` command line: one sub-command per module of this package."""

from __future__ import annotations

import argparse
import os
import sys

from trainwright.cli.export_args import add_export_parser, add_registry_parser  # argparse only: no torch import

DEBUG_ENV = "TRAINWRIGHT_DEBUG"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trainwright", description="Train and evaluate detection models.")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser(
        "train", help="train a model as a recipe describes (default: YOLOX-N on the built-in shapes data)",
        usage="trainwright train [-h] [--list-recipes] [RECIPE] [key=value ...]\n"
              "       trainwright train --resume EXPERIMENT_DIR [key=value ...]",
        description="Train as RECIPE (a shipped recipe name or a YAML file) describes, with any key overridden "
                    "as key=value (OmegaConf dotted keys, YAML values), e.g. training_params.max_epochs=3. "
                    "Prints the experiment directory as the last line. Ctrl-C (or SIGTERM) stops the run and "
                    "prints the command that continues it: --resume EXPERIMENT_DIR.")
    train.add_argument("args", nargs="*", metavar="RECIPE key=value",
                       help="recipe name or path (default: yolox_n_shapes), then overrides")
    train.add_argument("--resume", metavar="EXPERIMENT_DIR",
                       help="continue the run of EXPERIMENT_DIR from its ckpt_latest.pth with its own recipe.yaml; "
                            "overrides may change only how long and where it runs (e.g. training_params.max_epochs)")
    train.add_argument("--list-recipes", action="store_true", help="list the shipped recipes and exit")
    train.set_defaults(handler=_run_train)

    evaluate = sub.add_parser(
        "evaluate", help="COCO summary of a checkpoint on a COCO-format dataset",
        description="Evaluate CHECKPOINT on a COCO-format dataset (default: the validation split it was trained "
                    "on): print the twelve COCO bbox numbers and a per-class table, and write a precision-recall "
                    "curve, an F1-confidence curve and a confusion matrix as PNG (beside the checkpoint, or in "
                    "--output).")
    evaluate.add_argument("checkpoint", help="a .pth file written by trainwright train")
    evaluate.add_argument("--images", help="images folder of the dataset (with --annotations)")
    evaluate.add_argument("--annotations", help="COCO instances JSON of the dataset (with --images)")
    evaluate.add_argument("--json", action="store_true", help="print the summary and per-class table as JSON")
    evaluate.add_argument("--save-json", metavar="FILE",
                          help="write the detections as COCO results (image_id, category_id, bbox, score) to FILE")
    evaluate.add_argument("--output", metavar="DIR",
                          help="folder for the plots (default: the checkpoint's folder; created if missing)")
    evaluate.add_argument("--no-plots", action="store_true", help="do not write the plots")
    evaluate.add_argument("--batch-size", type=int, default=16, help="images per forward pass (default 16)")
    evaluate.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda when available)")
    evaluate.set_defaults(handler=_run_evaluate)

    predict = sub.add_parser(
        "predict", help="draw and print a checkpoint's detections on images and videos",
        description="Run CHECKPOINT on each image and video SOURCE names (files, folders, glob patterns), write "
                    "them with their boxes drawn to --output (images in their own format, videos as mp4) and "
                    "print the detections (x1 y1 x2 y2 in pixels of the original image). Other files are "
                    "skipped with a note; an input that cannot be read is reported, the others are still "
                    "processed, and the exit status is 1.")
    predict.add_argument("checkpoint", help="a .pth file written by trainwright train, or an .onnx file written by "
                                            "trainwright export (run with onnxruntime)")
    predict.add_argument("sources", nargs="+", metavar="SOURCE",
                         help="image or video files, folders of them, or glob patterns (quoted, e.g. 'data/*.jpg')")
    predict.add_argument("--output", default="predictions", help="folder for the outputs (default: predictions)")
    predict.add_argument("--conf", type=float, default=None,
                         help="confidence threshold (default: the recipe's visualization.conf, else 0.3)")
    predict.add_argument("--iou", type=float, default=None, help="NMS IoU threshold (default: the recipe's postprocess.iou)")
    predict.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda when available)")
    predict.add_argument("--save-json", metavar="FILE", help="also write the detections as COCO results to FILE")
    predict.add_argument("--save-txt", action="store_true",
                         help="also write one label file per image (and video frame) under OUTPUT/labels: "
                              "'class cx cy w h score' per line, box normalised to [0, 1] (YOLO format)")
    predict.set_defaults(handler=_run_predict)

    convert = sub.add_parser(
        "convert", help="write another project's checkpoint in trainwright's layout",
        description="Convert IN, a checkpoint of FORMAT (yolox-official: the official Megvii YOLOX weights, "
                    "yolox_nano/tiny/s/m/l/x.pth), into a trainwright checkpoint OUT.")
    convert.add_argument("format", choices=["yolox-official"], metavar="FORMAT", help="yolox-official")
    convert.add_argument("input", metavar="IN", help="the checkpoint to convert (only read)")
    convert.add_argument("output", metavar="OUT", help="the trainwright checkpoint to write")
    convert.add_argument("--arch", default=None, help="yolox_n/t/s/m/l/x (default: inferred from the weights)")
    convert.add_argument("--overwrite", action="store_true", help="replace OUT when it exists")
    convert.add_argument("--allow-unsafe-pickle", action="store_true",
                         help="read IN with a full unpickle (runs code the file names: trusted files only)")
    convert.set_defaults(handler=_run_convert)

    add_export_parser(sub)
    add_registry_parser(sub)

    demo = sub.add_parser("demo", help="post-process a synthetic YOLOX output with our NMS next to torchvision's")
    demo.set_defaults(handler=_run_demo)
    return parser


def _run_train(args: argparse.Namespace) -> int:
    from trainwright.cli.train import run_train
    from trainwright.recipes import list_recipes

    if args.list_recipes:
        print("\n".join(list_recipes()))
        return 0
    return run_train(args.args, resume_dir=args.resume)


def _run_evaluate(args: argparse.Namespace) -> int:
    from trainwright.cli.evaluate import run_evaluate

    return run_evaluate(args.checkpoint, args.images, args.annotations, as_json=args.json,
                        batch_size=args.batch_size, device=args.device, save_json=args.save_json,
                        output=args.output, plots=not args.no_plots)


def _run_predict(args: argparse.Namespace) -> int:
    from trainwright.cli.predict import run_predict

    return run_predict(args.checkpoint, args.sources, args.output, conf=args.conf, iou=args.iou, device=args.device,
                       save_json=args.save_json, save_txt=args.save_txt)


def _run_convert(args: argparse.Namespace) -> int:
    from trainwright.cli.convert import run_convert

    return run_convert(args.format, args.input, args.output, args.arch, overwrite=args.overwrite,
                       allow_unsafe_pickle=args.allow_unsafe_pickle)


def _run_demo(args: argparse.Namespace) -> int:
    from trainwright.cli.demo import run_demo

    return run_demo()


def _user_errors() -> tuple[type[BaseException], ...]:
    import pickle

    from trainwright.config import UnusedConfigParamException
    from trainwright.training.experiment_dir import ExperimentInUseError

    # pickle.UnpicklingError: a checkpoint refused by the weights-only reader (trainwright.checkpoints);
    # ImportError: an optional extra (export, simplify, mlflow) that is not installed.
    return (UnusedConfigParamException, OSError, ValueError, TypeError, KeyError, pickle.UnpicklingError, ImportError,
            ExperimentInUseError)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except BrokenPipeError:  # output piped into a reader that stopped early (e.g. `| head`)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:  # outside a training run's own handling (which saves and returns 130)
        if os.environ.get(DEBUG_ENV):
            raise
        print(f"trainwright {args.command}: interrupted", file=sys.stderr)
        return 130
    except _user_errors() as err:
        if os.environ.get(DEBUG_ENV):
            raise
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"trainwright {args.command}: error: {message}\n(set {DEBUG_ENV}=1 to see the traceback)",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
