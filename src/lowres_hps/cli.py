"""The `lowres-hps` command line.

One table, :data:`COMMANDS`: each subcommand's help and arguments. Its work is ``main(args)`` in
``lowres_hps.commands.<name>``, imported only when it runs, so that ``lowres-hps --help`` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable

def _add_demo(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="demo_out", help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--count", type=int, default=4, help="number of random people")


def _add_degrade(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", help="input image")
    p.add_argument("--box", type=float, nargs=4, action="append", metavar=("X", "Y", "W", "H"),
                   help="person box in pixels (repeatable); default: the whole image")
    p.add_argument("--heights", type=int, nargs="+", default=None,
                   help="person heights R in px, upsample setting only (default: the evaluation midpoints "
                        "176 96 52 32)")
    p.add_argument("--input-size", type=int, nargs=2, default=[224, 224], metavar=("H", "W"),
                   help="network input size; 64 48 or 128 96 for the CAL setting")
    p.add_argument("--setting", choices=["upsample", "native"], default="upsample",
                   help="upsample: degrade to R then bicubic back to the input size (RSC-Net/MILI); "
                        "native: the input itself is small (CAL)")
    p.add_argument("--out", required=True, help="output folder")


def _add_evaluate(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="task", required=True)
    kp2d = sub.add_parser("kp2d", help="COCO keypoint OKS AP/AR of a results file")
    kp2d.add_argument("--gt", required=True, help="COCO keypoint annotations json")
    kp2d.add_argument("--pred", required=True, help="COCO keypoint results json")
    kp2d.add_argument("--sigmas", default=None, help="per-keypoint OKS sigmas (comma separated); default COCO-17")
    kp2d.add_argument("--from", dest="source", choices=("2d", "3d"), default="2d",
                      help="2d: the results' keypoints; 3d: the 3D keypoints of a predict predictions.json seen by "
                           "the camera it reports (keypoints_3d_projected), each person with its predict score")
    kp3d = sub.add_parser("kp3d", help="MPJPE, PA-MPJPE, 3DPCK and AUC of 3D keypoints")
    kp3d.add_argument("--gt", required=True, help="npz with keypoints3d (N,K,3) in metres, optional mask (N,K); "
                                                 "or a SynthLR folder")
    kp3d.add_argument("--pred", required=True, help="npz with keypoints3d (N,K,3) in metres; or, with a SynthLR "
                                                   "--gt, the predictions.json of lowres-hps predict (3D model)")
    kp3d.add_argument("--min-iou", type=float, default=0.5,
                      help="SynthLR --gt: smallest box IoU that matches a prediction to a ground-truth person")
    root = kp3d.add_mutually_exclusive_group()
    root.add_argument("--root", default=None,
                      help="root alignment for MPJPE/3DPCK/AUC: a joint name of --convention, 'hips' (mid-hip) "
                           "or 'none'; default: pelvis (mid-hip where the convention lacks it) with --convention, "
                           "none without")
    root.add_argument("--root-index", type=int, default=None, help="root alignment on this joint index")
    kp3d.add_argument("--convention", default=None, help="keypoint convention of the arrays (for --root by name)")
    kp3d.add_argument("--pck-threshold", type=float, default=0.15, help="3DPCK threshold in metres")


def _add_data(p: argparse.ArgumentParser) -> None:
    p.add_argument("format", choices=["coco", "lsp", "spin", "mpii", "crowdpose", "ochuman", "synthlr"])
    p.add_argument("path", help="annotation file (json/mat/npz)")
    p.add_argument("--images", default=None, help="image folder (default: next to the annotations)")
    p.add_argument("--preview", default=None, help="write a PNG contact sheet of the first samples")
    p.add_argument("--num-preview", type=int, default=8, help="number of people on the preview sheet")
    p.add_argument("--convention", default=None,
                   help="keypoint convention of the file (coco and spin formats; e.g. h36m17 for a 17-joint npz)")
    p.add_argument("--check-images", action="store_true", help="skip (and report) people whose image is missing")


def _add_synth(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default=None, help="output folder (annotations.json, annotations_3d.npz, images/, labels/)")
    p.add_argument("--count", type=int, default=8, help="number of images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--layout", choices=["crops", "scenes"], default="crops",
                   help="crops: one person per 224x224 image; scenes: 2-12 people per 832x512 image")
    p.add_argument("--backgrounds", default=None, help="folder of photos without people (default: procedural)")
    p.add_argument("--workers", type=int, default=None, help="processes (default: CPU count)")
    p.add_argument("--preview", default=None, help="write a PNG contact sheet at 224/96/52/32 px")


def _add_body(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True)
    info = sub.add_parser("info", help="print the body model's sizes and conventions")
    info.add_argument("--model", default="anny", choices=["anny", "smpl", "smplx"])
    info.add_argument("--model-path", default=None, help="folder or file of SMPL/SMPL-X (or $SMPL_MODEL_DIR)")
    sub.add_parser("warmup", help="build the Anny cache ($ANNY_CACHE_DIR) once")
    mesh = sub.add_parser("mesh", help="write the rest or a random mesh to OBJ/PLY/GLB")
    mesh.add_argument("--model", default="anny", choices=["anny", "smpl", "smplx"])
    mesh.add_argument("--model-path", default=None)
    mesh.add_argument("--random", action="store_true", help="random plausible shape and pose")
    mesh.add_argument("--seed", type=int, default=0)
    mesh.add_argument("--out", required=True)


class _IntermixedArgumentParser(argparse.ArgumentParser):
    """Lets positionals follow options (``CONFIG --out DIR key=value``), which plain argparse rejects."""

    _intermixing = False

    def parse_known_args(self, args=None, namespace=None):
        if self._intermixing:  # parse_known_intermixed_args calls back into parse_known_args
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False


def _add_train(p: argparse.ArgumentParser) -> None:
    p.__class__ = _IntermixedArgumentParser  # key=value overrides may come after --out/--resume
    p.add_argument("config", help="YAML config (a TrainConfig: task, task_args, trainer)")
    p.add_argument("--out", default=None, help="run folder (overrides trainer.out_dir)")
    p.add_argument("--resume", action="store_true", help="resume from last.pt in the run folder, mid-epoch included")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. trainer.optim.lr=1e-4 task_args.hidden=64")


def _add_models(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the model cards as JSON instead of a table")


def _add_export(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True,
                   help="registered model name or .safetensors checkpoint path: a 2D keypoint model, a 3D body "
                        "model (exported: the network, inputs images + range_index; the body model runs after it), "
                        "or a MILI model (exported: its person detector on whole images of any size)")
    p.add_argument("--format", choices=["onnx"], default="onnx")
    p.add_argument("--out", required=True, help="output file (.onnx); metadata_props document the preprocessing")
    p.add_argument("--batch", default="dynamic", help="'dynamic' or a fixed batch size")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset version")
    p.add_argument("--no-verify", dest="verify", action="store_false",
                   help="skip the onnxruntime run that compares the outputs with PyTorch (int8: with float32)")
    p.add_argument("--int8", action="store_true",
                   help="2D models and MILI detectors: static int8 quantization (ONNX Runtime, QDQ, per-channel "
                        "weights), calibrated on --calibration; runs like the float32 export")
    p.add_argument("--calibration", default=None, metavar="ANN.json|VIDEO|DIR",
                   help="--int8, 2D models: COCO keypoints json of real people (not a test split); crops of them at "
                        "the model's input size, half degraded to 16-96 px, set the int8 ranges. MILI: a video or "
                        "image folder of the camera (frames reduced 1-4x, resized as the detector does)")
    p.add_argument("--calibration-frames-range", default=None, metavar="A:B",
                   help="MILI --int8 on a video: calibrate on frames A-B only (1-based; keep held-out frames out)")
    p.add_argument("--calibration-images", default=None, metavar="DIR",
                   help="image folder of --calibration (default: found like the dataset readers do)")
    p.add_argument("--calibration-method", choices=["percentile", "minmax"], default=None,
                   help="activation ranges: 99.999th percentile of each histogram, or min/max (default: percentile "
                        "for 2D models, min/max for MILI)")
    p.add_argument("--calibration-crops", type=int, default=None,
                   help="number of calibration crops (default 256), or of frames for MILI (default 8: the calibrator "
                        "keeps every activation, ~0.85 GB per 768 x 576 frame)")


def _add_predict(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", help="image files, folders of images, videos (.avi .mp4 .mov .mkv), and "
                                             "streams: camera:N (a local camera) or a URL OpenCV opens (rtsp://, "
                                             "http://, file://); stop a stream with Ctrl-C, what was done is kept")
    p.add_argument("--out", required=True, help="output folder: predictions.json (COCO keypoint results, with 3D), "
                                                "images.json, overlays/, <video>_overlay.mp4 and meshes/")
    p.add_argument("--model", default=None,
                   help="registered model name or checkpoint path (default: the project's default 2D model), or "
                        "a 2D .onnx file of `lowres-hps export` (ONNX Runtime; --int8 exports are the fastest on "
                        "CPU); a 3D model serves for both 2D and 3D")
    p.add_argument("--model3d", default=None, metavar="NAME|PATH",
                   help="3D body model: adds keypoints_3d and body to predictions.json and meshes to the overlays "
                        "(default: the project's default 3D model when installed; 'none': 2D only); a 3D .onnx "
                        "export runs its network in ONNX Runtime (faster on CPU), the body model in PyTorch")
    p.add_argument("--fit-keypoints", action=argparse.BooleanOptionalAction, default=None,
                   help="fit each 3D body to the 2D model's keypoints after the 3D network, so that its projection "
                        "sits on the person (default: on when a 2D model and a 3D model run, in one convention)")
    p.add_argument("--fit-steps", type=int, default=None, metavar="N",
                   help="--fit-keypoints: optimisation steps (default 60; fewer are faster and looser)")
    p.add_argument("--fit-pose-prior", type=float, default=None, metavar="W",
                   help="--fit-keypoints: how strongly joint rotations stay near the network's (default 1; lower "
                        "follows the 2D keypoints closer, with less plausible depth)")
    p.add_argument("--fit-silhouettes", action="store_true",
                   help="videos from a static camera: also fit each body to the person's silhouette (background "
                        "subtraction, --background), as the silhouette-topology paper's inference-time fitting; ~10 "
                        "renders per person, slower")
    p.add_argument("--background", choices=["mog2", "knn"], default="mog2",
                   help="--fit-silhouettes: OpenCV background subtractor")
    p.add_argument("--mesh-format", choices=["obj", "ply", "glb"], default=None,
                   help="also write each person's mesh to meshes/ (full-image camera, metres; needs a 3D model)")
    p.add_argument("--boxes", default=None, help="COCO annotation json: predict on its person boxes (ground truth, "
                                                 "for evaluation) with its image ids; without it, --detector")
    p.add_argument("--all-boxes", action="store_true",
                   help="with --boxes: also people without labelled keypoints (default: num_keypoints > 0)")
    p.add_argument("--person-height", type=float, default=None, metavar="R",
                   help="degrade every person to R px tall (low-resolution protocol) before the model")
    p.add_argument("--batch-size", type=int, default=32, help="people per model call; images read per chunk")
    p.add_argument("--device", default=None, help="torch device of the model, e.g. cuda:0 (default: CPU)")
    p.add_argument("--flip-test", action=argparse.BooleanOptionalAction, default=None,
                   help="average with the mirrored crop (default: the model's own setting)")
    p.add_argument("--flip-test-3d", action=argparse.BooleanOptionalAction, default=None,
                   help="3D model: average each body with the mirrored crop's, mirrored back (twice the 3D "
                        "network's cost; default: the 3D model's own setting)")
    p.add_argument("--detector", choices=["auto", "hog", "multipose", "mili"], default="auto",
                   help="people source without --boxes: MILI's detector (a shipped model, or --detector-model), "
                        "MoveNet MultiPose (its weights come with make pretrained) or OpenCV's HOG; auto (default): "
                        "MILI when its model is installed (it ships with the package), else MultiPose when its "
                        "weights are there, else HOG")
    p.add_argument("--detector-model", default=None, metavar="NAME|PATH",
                   help="--detector mili: a MILI model name or checkpoint, or its detector's ONNX export (fast: "
                        "`lowres-hps export`; default mili_multipose)")
    p.add_argument("--masks", action="store_true",
                   help="--detector mili: each person's instance mask from MILI's occlusion-aware mask head, in "
                        "predictions.json (COCO RLE `segmentation`) and filled on the overlays")
    p.add_argument("--detector-upscale", type=float, default=None,
                   help="upscale factor before detection (default: HOG 2, its window needs people ~100 px tall; "
                        "MultiPose: the long side to 1024 px, MILI: to 768 px, x1 to x4)")
    p.add_argument("--detector-min-score", type=float, default=None,
                   help="minimum box score (default: HOG 0.5, the logistic of SVM margin 0; MultiPose and MILI 0.2)")
    p.add_argument("--kpt-threshold", type=float, default=0.3, help="overlays: keypoints scoring below are not drawn")
    p.add_argument("--no-overlay", action="store_true", help="write no overlay images or videos")
    p.add_argument("--max-frames", type=int, default=None, metavar="N", help="videos: stop after the first N frames")
    p.add_argument("--track", action=argparse.BooleanOptionalAction, default=True,
                   help="videos: track people across frames (ByteTrack-style; each person gets a track_id), write "
                        "<video>_mot.txt (MOTChallenge, frame by frame), tracks/<video>.json (per-track outputs) "
                        "and tracks/<video>_trajectories.png (default: on; people of a track's first frame wait "
                        "for its second)")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="N processes, each on every N-th input (files round robin), writing OUT/shards/K; then "
                        "predictions.json and images.json are merged in OUT with unique ids")
    p.add_argument("--shard", default=None, metavar="I/N|auto",
                   help="only every N-th input from the I-th (0-based): one process of a cluster job; auto reads "
                        "torchrun's RANK/WORLD_SIZE or Slurm's SLURM_PROCID/SLURM_NTASKS (README: scale-out)")
    p.add_argument("--detect-every", type=int, default=1, metavar="K",
                   help="with --track: run the detector on every K-th frame only; between, each tracked person's box "
                        "follows its keypoints (faster; new people wait for the next detection)")
    p.add_argument("--smooth-position", type=float, nargs=2, default=None, metavar=("MIN_CUTOFF", "BETA"),
                   help="One-Euro parameters of pixel fields: cutoff (Hz) at rest, and its rise per px/s of speed "
                        "(default 0.5 0.1, tuned on synthetic walking; metric fields scale BETA by 60 per metre)")
    p.add_argument("--smooth-rotation", type=float, nargs=2, default=None, metavar=("MIN_CUTOFF", "BETA"),
                   help="One-Euro parameters of joint rotations: cutoff (Hz) and its rise per rad/s (default 2 1)")
    p.add_argument("--facing-from-motion", action=argparse.BooleanOptionalAction, default=False,
                   help="static cameras, with --track and --fit-keypoints: a walking person's direction of travel "
                        "(from earlier frames) decides which way the body faces; a body that faces against it is "
                        "fitted again with the 2D keypoints' left and right exchanged (off by default: a panning "
                        "or moving camera changes where people seem to go)")
    p.add_argument("--heading-positions", choices=["ground", "root"], default="ground",
                   help="with --facing-from-motion, where a person is when their direction of travel is measured: "
                        "'ground', where the bottom of their box meets the ground plane fitted to the feet seen so "
                        "far (steady for small people seen from above; judging starts after about 100 feet), or "
                        "'root', the body's root, its depth from its size (better for large people and level "
                        "cameras) (default: ground)")
    p.add_argument("--smooth", action=argparse.BooleanOptionalAction, default=True,
                   help="with --track: One-Euro smoothing of each track's keypoints and body (rotations on the "
                        "manifold); meshes stay unsmoothed (default: on)")


def _add_adapt(p: argparse.ArgumentParser) -> None:
    from lowres_hps.commands.adapt import add_arguments

    add_arguments(p)


def _add_selfsup(p: argparse.ArgumentParser) -> None:
    from lowres_hps.commands.selfsup import add_arguments

    add_arguments(p)


def _add_label(p: argparse.ArgumentParser) -> None:
    from lowres_hps.commands.label import add_arguments

    add_arguments(p)


# name -> (help, function adding its arguments); the handler is lowres_hps.commands.<name>:main.
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None]]] = {
    "demo": ("render low-resolution samples of the body model through the protocol", _add_demo),
    "degrade": ("apply the low-resolution protocol to person boxes of an image", _add_degrade),
    "evaluate": ("score predictions: kp2d (COCO OKS AP) or kp3d (MPJPE, PA-MPJPE, ...)", _add_evaluate),
    "data": ("inspect a dataset through the readers", _add_data),
    "synth": ("generate SynthLR: rendered people with 2D, 3D, mask and body ground truth", _add_synth),
    "body": ("body models: info, warm-up of the Anny cache, mesh export", _add_body),
    "train": ("train a model from a YAML config (torchrun for several processes)", _add_train),
    "models": ("list the installed named 2D and 3D models (model cards)", _add_models),
    "export": ("export a 2D, 3D or MILI model to ONNX with its preprocessing documented", _add_export),
    "predict": ("2D keypoints and 3D bodies of the people in images, folders and videos", _add_predict),
    "adapt": ("adapt a 3D model to a static camera from people's silhouettes (no labels)", _add_adapt),
    "selfsup": ("fine-tune a 3D model on unlabelled real people by self-supervision (SSPSE)", _add_selfsup),
    "label": ("COCO keypoint pseudo-labels of real people from high-resolution teachers (MoveNet)", _add_label),
}


def build_parser() -> argparse.ArgumentParser:
    from lowres_hps import __version__

    parser = argparse.ArgumentParser(
        prog="lowres-hps",
        description="2D keypoints and 3D body pose and shape from low-resolution images of people.",
    )
    parser.add_argument("--version", action="version", version=f"lowres-hps {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (help_text, add_arguments) in COMMANDS.items():
        add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    given = list(sys.argv[1:] if argv is None else argv)
    # The command's own arguments, for commands that start copies of themselves (predict --workers).
    args.argv = given[given.index(args.command) + 1:] if args.command in given else []
    func = importlib.import_module(f"lowres_hps.commands.{args.command}").main
    try:
        return int(func(args) or 0)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        # User errors: one clear line, no traceback.
        print(f"lowres-hps {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
