"""The grain bridge of the shipped grain model, in 2D and 3D (issue 13): sampled fingerprints -> predicted grain
size and R-n slope -> Potts grains, judged by the generation-quality measure against held-out maps.

Per Potts stage (training maps: seeds 0-3, 256^2, as ``scripts/train_grain_model.py``; the real reference: the 64
windows of each of ``--reference-maps`` held-out 512^2 maps, seeds 200-203):
- the head's R^2 on the windows of the first held-out map, and the mean and sd of its predictions for 64 sampled
  fingerprints against the held-out windows' own;
- ``--walks`` sets of 64 sampled fingerprints as 64^2 maps, one judgement over each set of 64;
- the 64 windows of each of eight other real maps, judged the same way: how often real structures pass, the
  measure's own noise;
- the first ``--volumes`` fingerprints of the first set as 64^3 volumes, each judged on 16 of its sections (8
  along z, 8 along y), with the mean statistics of those sections.

With ``--potts-3d``, instead: the sections of 3D Potts volumes (``make_grain_structure`` in 3D, two 64^3 seeds
per stage) against the bridge's 3D growths (``grow_grains``) to the same section area, per growth factor: which
factor a growth table measured on 3D sections would pick for a model trained on sections of 3D grains.

With ``--sections-3d``, instead: the grain head fitted on sections of 3D Potts volumes (four 64^3 volumes per
stage, 16 sections each, every section relabelled by its connected pieces as a micrograph of a larger material
shows them), with and without its table of 3D growths (``fit_grain_head(..., volumes=True)``); ``--volumes``
sampled fingerprints as 64^3 volumes, their 16 sections each judged against the 64 sections of four held-out
3D volumes (seeds 200-203), and all their sections judged as one set; the same for eight other real volumes
(seeds 300-307), the measure's own noise. ``--tables 3d`` judges only the volumes of the 3D table;
``--train-volumes`` sets how many volumes the head learns from (4), ``--reference-volumes`` how many held-out
volumes make the reference (4; with more, the first four judge too), ``--walks-3d`` how many sets of sampled
fingerprints are grown (1).

With ``--section-sizes``, instead: 3D growths to the mean section area of two held-out volumes, judged on 16
relabelled sections, per growth factor (1, 1.01, 2.5; seeds 0-2): how far a volume lands from its target.

    python benchmarks/grain_bridge.py [--stages early intermediate late] [--volumes 8] [--walks 3]
                                      [--reference-maps 4] [--potts-3d] [--section-sizes]
                                      [--sections-3d [--tables 2d 3d] [--train-volumes 4]
                                       [--reference-volumes 4] [--walks-3d 1]]
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import time
import warnings
from collections import Counter

import numpy as np
from skimage.measure import label

import napari_microfingerprint as m
from napari_microfingerprint.core.characterization import grain_statistics
from napari_microfingerprint.core.fingerprint_grains import (
    AREA_CV_TOLERANCE_3D,
    GROWTHS,
    SLOPE_TOLERANCE_3D,
    TABLE_SEEDS_3D,
    grow_grains,
    growth_table_3d,
)
from napari_microfingerprint.core.generation_quality import real_patches

#: Seeds of the held-out 512^2 maps whose windows are the real reference (the first also gives the head's R^2).
REFERENCE_SEEDS = (200, 201, 202, 203)
#: Seeds of the real maps whose windows are judged like generated ones: what share of real windows passes.
CONTROL_SEEDS = tuple(range(300, 308))


def _shares(quality) -> str:
    return " / ".join(f"{100 * r.inside_share:.0f}" for r in quality.table.itertuples())


def _spread(maps: list[np.ndarray]) -> str:
    """Mean ± sd of the maps' mean grain area and R-n slope (grain_statistics)."""
    st = [grain_statistics(x)[1] for x in maps]
    area, slope = np.array([x["mean_area"] for x in st]), np.array([x["rn_slope"] for x in st])
    return f"area {area.mean():.1f} ± {area.std():.1f}, slope {np.nanmean(slope):.2f} ± {np.nanstd(slope):.2f}"


def _window_values(model, maps: list[np.ndarray], step: int) -> tuple[np.ndarray, np.ndarray]:
    """Fingerprints and (log mean area, R-n slope) of the ``step``-strided windows of ``maps``."""
    p, dim = model.config["patch_size"], model.config["latent_dim"]
    zs, values = [], []
    for lab in maps:
        for y in range(0, lab.shape[0] - p + 1, step):
            for x in range(0, lab.shape[1] - p + 1, step):
                summary = grain_statistics(lab[y:y + p, x:x + p])[1]
                values.append((np.log(summary["mean_area"]), summary["rn_slope"]))
        zs.append(m.encode(model, lab, stride=step).reshape(-1, dim))
    return np.concatenate(zs), np.asarray(values)


def _r2(pred: np.ndarray, true: np.ndarray) -> float:
    ok = np.isfinite(true)
    return float(1 - np.mean((pred[ok] - true[ok]) ** 2) / np.var(true[ok]))


def stage_rows(model, stage: str, volumes: int, walks: int, reference_maps: int) -> list[str]:
    p, dim = model.config["patch_size"], model.config["latent_dim"]
    train = [m.make_grain_structure((256, 256), stage=stage, seed=s, device="cpu") for s in range(4)]
    held_out = [m.make_grain_structure((512, 512), stage=stage, seed=s, device="cpu")
                for s in REFERENCE_SEEDS[:reference_maps]]
    real = held_out[0]
    patches = [w for lab in held_out for w in real_patches(model, lab, "grains")[0]]
    z = np.concatenate([m.encode(model, t, stride=p // 2).reshape(-1, dim) for t in train])
    walk = m.sample_latent(model, z, n=64, seed=0, labels=True)
    start = time.perf_counter()
    head = m.fit_grain_head(model, train, device="cpu")
    fit = time.perf_counter() - start
    z_real, truth = _window_values(model, [real], p // 2)
    area_pred, slope_pred = head.predict(z_real)
    areas, slopes = head.predict(walk.z)
    real_area = np.exp(truth[:, 0])
    rows = [f"| {stage} | head | R^2 held out: log area {_r2(np.log(area_pred), truth[:, 0]):.2f}, slope "
            f"{_r2(slope_pred, truth[:, 1]):.2f}; predicted for the 64 samples: area {areas.mean():.1f} ± "
            f"{areas.std():.1f} (held-out windows {real_area.mean():.1f} ± {real_area.std():.1f}), slope "
            f"{slopes.mean():.3f} ± "
            f"{slopes.std():.3f} ({np.nanmean(truth[:, 1]):.3f} ± {np.nanstd(truth[:, 1]):.3f}) | {fit:.0f} | | |"]
    for w in range(walks):
        zs = walk.z if w == 0 else m.sample_latent(model, z, n=64, seed=w, labels=True).z
        start = time.perf_counter()
        maps = [m.grains_from_fingerprint(head, zz, (p, p), seed=k + 1000 * w, device="cpu")
                for k, zz in enumerate(zs)]
        quality = m.generation_quality(maps, patches, kind="grains")
        factors = Counter(head.growth_for(a, s, area_cv=c) for a, s, c in zip(*head.predict(zs),
                                                                             head.predict_area_cv(zs)))
        rows.append(f"| {stage} | 64 maps of 64^2, fingerprints sampled with seed {w} ({_spread(maps)}; growth "
                    f"factors {', '.join(f'{g:g} ({n})' for g, n in sorted(factors.items()))}) | "
                    f"{time.perf_counter() - start:.0f} | {_shares(quality)} | {'yes' if quality.passed else 'no'} |")
    for s in CONTROL_SEEDS:  # the measure's own noise: real windows of other maps of the stage, judged the same way
        other = real_patches(model, m.make_grain_structure((512, 512), stage=stage, seed=s, device="cpu"), "grains")[0]
        quality = m.generation_quality(other, patches, kind="grains")
        rows.append(f"| {stage} | real: the 64 windows of another 512^2 map, seed {s} ({_spread(other)}) | | "
                    f"{_shares(quality)} | {'yes' if quality.passed else 'no'} |")
    for k in range(volumes):
        start = time.perf_counter()
        vol = m.grains_from_fingerprint(head, walk.z[k], (64, 64, 64), seed=0, device="cpu")
        seconds = time.perf_counter() - start
        sections = _sections(vol)
        q = m.generation_quality(sections, patches, kind="grains")
        rows.append(f"| {stage} | 64^3 volume of sample {k} (predicted area {areas[k]:.0f}, slope {slopes[k]:.2f}; "
                    f"sections: {_spread(sections)}) | {seconds:.0f} | {_shares(q)} | {'yes' if q.passed else 'no'} |")
    rows.append(f"| {stage} | held-out patches | | {_spread(patches)} | |")
    return rows


def _sections(volume: np.ndarray) -> list[np.ndarray]:
    """16 sections of a 64^3 volume: 8 along z, 8 along y (as the generated volumes are judged)."""
    return [volume[i] for i in range(0, 64, 8)] + [volume[:, i] for i in range(0, 64, 8)]


def potts_3d_rows(stage: str) -> list[str]:
    """Sections of two 64^3 Potts volumes of ``stage`` against 3D growths of the bridge to their mean section
    area, one per growth factor of the head's table."""
    start = time.perf_counter()
    real = [x for s in (0, 1) for x in _sections(m.make_grain_structure((64, 64, 64), stage=stage, seed=s,
                                                                        device="cpu"))]
    area = float(np.mean([grain_statistics(x)[1]["mean_area"] for x in real]))
    rows = [f"| {stage} | 3D Potts volumes, 32 sections ({_spread(real)}) | {time.perf_counter() - start:.0f} | | |"]
    for growth in GROWTHS:
        start = time.perf_counter()
        grown = grow_grains((64, 64, 64), area, 64, growth=growth, seed=0, device="cpu")
        rows.append(f"| {stage} | bridge 3D growth, factor {growth:g}, 16 sections ({_spread(_sections(grown))}) | "
                    f"{time.perf_counter() - start:.0f} | | |")
    return rows


def _relabelled_sections(volume: np.ndarray) -> list[np.ndarray]:
    """The 16 sections of :func:`_sections`, each labelled by its face-connected pieces (a grain that meets a
    section twice, or wraps around the periodic box, shows as two grains in a micrograph)."""
    return [label(x, background=-1, connectivity=1) for x in _sections(volume)]


def _verdicts(sets: list[list[np.ndarray]], references: dict[str, list[np.ndarray]]) -> str:
    """Each reference's judgement of ``sets`` (the sections of one volume each): the shares inside over all their
    sections, how many sets pass alone, and whether all their sections pass as one set."""
    out = []
    for name, real in references.items():
        quality = m.generation_quality([x for one in sets for x in one], real, kind="grains")
        passed = sum(m.generation_quality(one, real, kind="grains").passed for one in sets)
        out.append(f"{name}: {_shares(quality)}, {passed} of {len(sets)} volumes, all sections "
                   f"{'pass' if quality.passed else 'fail'}")
    return "; ".join(out)


def sections_3d_rows(model, stage: str, volumes: int, tables: tuple[str, ...] = ("2d", "3d"),
                     train_volumes: int = 4, reference_volumes: int = 4, walks: int = 1) -> list[str]:
    """The head fitted on sections of 3D Potts volumes of ``stage``, with its 2D and (or) its 3D growth table: the
    sections of ``volumes`` 64^3 volumes from sampled fingerprints (``walks`` sets, sampling seeds 0, 1, ...)
    against the sections of ``reference_volumes`` held-out volumes (seeds 200, 201, ...), and also against those of
    the first four when there are more (the reference of the earlier tables). The set of sampling seed s grows
    its volumes with seeds ``s * volumes`` onwards, so that sets differ even when their fingerprints ask for the
    same size (before the thirteenth session every set used seeds 0, 1, ...). The 3D table is
    :func:`growth_table_3d` as ``fit_grain_head(..., volumes=True)`` makes it, one seed at a time so that the
    seed-to-seed difference of its entries (the noise :data:`SLOPE_TOLERANCE_3D` and :data:`AREA_CV_TOLERANCE_3D`
    allow for) is shown. The head learns from the sections of ``train_volumes`` volumes (seeds 0, 1, ...)."""
    dim = model.config["latent_dim"]
    start = time.perf_counter()
    train = [x for s in range(train_volumes) for x in _relabelled_sections(
        m.make_grain_structure((64, 64, 64), stage=stage, seed=s, device="cpu"))]
    real = [x for s in range(REFERENCE_SEEDS[0], REFERENCE_SEEDS[0] + reference_volumes) for x in
            _relabelled_sections(m.make_grain_structure((64, 64, 64), stage=stage, seed=s, device="cpu"))]
    references = {f"{reference_volumes} held-out volumes": real}
    if reference_volumes > 4:
        references["the first 4"] = real[:len(real) // reference_volumes * 4]
    made = time.perf_counter() - start
    start = time.perf_counter()
    head = m.fit_grain_head(model, train, device="cpu", growth_table="2d" in tables)
    tables_3d = [growth_table_3d(head.table_areas, model.config["patch_size"], seed=s, device="cpu", seeds=1)
                 for s in range(TABLE_SEEDS_3D if "3d" in tables else 0)]
    per_seed, cv_per_seed, sd_per_seed = (np.array([t[k] for t in tables_3d]) for k in (0, 1, 2))
    head = dataclasses.replace(head, table_slopes_3d=per_seed.mean(axis=0) if len(per_seed) else None,
                               table_area_cvs_3d=cv_per_seed.mean(axis=0) if len(per_seed) else None,
                               table_window_sds_3d=sd_per_seed.mean(axis=0) if len(per_seed) else None)
    fit = time.perf_counter() - start
    z = np.concatenate([m.encode(model, t).reshape(-1, dim) for t in train])
    table = " / ".join(f"{a:.0f} px: " + ", ".join(f"{v:.3f} (CV {c:.3f})" for v, c in zip(row, cvs))
                       for a, row, cvs in zip(head.table_areas, per_seed.mean(axis=0), cv_per_seed.mean(axis=0))
                       ) if len(per_seed) else "not built"
    # one growth's noise from the first two seeds: the sd of their entries' differences over sqrt(2)
    noise, cv_noise = (np.std(t[0] - t[1], ddof=1) / np.sqrt(2) if len(t) >= 2 else float("nan")
                       for t in (per_seed, cv_per_seed))
    rows = [f"| {stage} | {len(real)} held-out sections of {reference_volumes} volumes ({_spread(real)}); head "
            f"fitted on {len(train)} training sections (area "
            f"{np.mean([grain_statistics(t)[1]['mean_area'] for t in train]):.1f}) in {fit:.0f} s (volumes made in "
            f"{made:.0f} s); 3D table of {len(per_seed)} growths per entry (factors "
            f"{', '.join(f'{g:g}' for g in GROWTHS)}): {table}; sd of one growth's entry (from the seeds' "
            f"differences) {noise:.3f}, tolerance {SLOPE_TOLERANCE_3D}; of its CV {cv_noise:.3f}, tolerance "
            f"{AREA_CV_TOLERANCE_3D}; training windows' log area sd {head.log_area_sd:.3f}, the predictions' "
            f"{head.prediction_log_sd:.3f}, grown windows' {np.sqrt(np.nanmean(np.square(sd_per_seed))):.3f}: "
            f"material share {head.material_share(True):.2f} | | |"]
    arms = [("2D growth table", dataclasses.replace(head, table_slopes_3d=None))] if "2d" in tables else []
    arms += [("3D growth table", head)] if "3d" in tables else []
    for walk_seed in range(walks):
        walk = m.sample_latent(model, z, n=volumes, seed=walk_seed, labels=True)
        area_cvs = head.predict_area_cv(walk.z)
        for name, one in arms:
            areas, slopes = one.predict(walk.z, volume=True)
            start = time.perf_counter()
            grown, factors = [], []
            for k, zz in enumerate(walk.z):
                factors.append(one.growth_for(float(areas[k]), float(slopes[k]), True, float(area_cvs[k])))
                grown.append(_relabelled_sections(m.grains_from_fingerprint(
                    one, zz, (64, 64, 64), seed=walk_seed * volumes + k, device="cpu")))
            verdicts = _verdicts(grown, references)
            rows.append(f"| {stage} | {name}, sampling seed {walk_seed}: {volumes} volumes predicted at area "
                        f"{areas.mean():.1f} (windows: {head.predict(walk.z)[0].mean():.1f}), slope "
                        f"{slopes.mean():.2f}, area CV {area_cvs.mean():.3f}; growth factors "
                        f"{', '.join(f'{g:g}' for g in factors)} ({_spread([x for v in grown for x in v])}) | "
                        f"{time.perf_counter() - start:.0f} | {verdicts} |")
    start = time.perf_counter()  # the measure's own noise: other real volumes, judged the same way
    control = [_relabelled_sections(m.make_grain_structure((64, 64, 64), stage=stage, seed=s, device="cpu"))
               for s in CONTROL_SEEDS]
    verdicts = _verdicts(control, references)
    rows.append(f"| {stage} | real: {len(control)} other 3D Potts volumes, seeds {CONTROL_SEEDS[0]}-"
                f"{CONTROL_SEEDS[-1]} ({_spread([x for sections in control for x in sections])}) | "
                f"{time.perf_counter() - start:.0f} | {verdicts} |")
    return rows


def section_size_rows(stage: str, seeds: int = 3) -> list[str]:
    """3D growths (``grow_grains``, 64^3) to the mean section area of the held-out volumes of ``stage``, judged
    as the generated volumes are (16 sections, each relabelled by its pieces): how far the growth lands from its
    target, per growth factor."""
    real = [x for s in REFERENCE_SEEDS[:2] for x in _relabelled_sections(
        m.make_grain_structure((64, 64, 64), stage=stage, seed=s, device="cpu"))]
    target = float(np.mean([grain_statistics(x)[1]["mean_area"] for x in real]))
    rows = []
    for growth in (1.0, 1.01, 2.5):
        start = time.perf_counter()
        ratios = [np.mean([grain_statistics(x)[1]["mean_area"] for x in _relabelled_sections(
            grow_grains((64, 64, 64), target, 64, growth=growth, seed=k, device="cpu"))]) / target
            for k in range(seeds)]
        rows.append(f"| {stage} | {target:.1f} | {growth:g} | {', '.join(f'{r:.3f}' for r in ratios)} | "
                    f"{np.mean(ratios):.3f} | {(time.perf_counter() - start) / seeds:.0f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", nargs="+", default=["early", "intermediate", "late"])
    parser.add_argument("--volumes", type=int, default=8, help="sampled fingerprints made into 64^3 volumes")
    parser.add_argument("--walks", type=int, default=3, help="sets of 64 sampled fingerprints (seeds 0, 1, ...)")
    parser.add_argument("--reference-maps", type=int, default=4, choices=range(1, len(REFERENCE_SEEDS) + 1),
                        help="held-out 512^2 maps whose 64 windows each make the real reference")
    parser.add_argument("--potts-3d", action="store_true",
                        help="only compare sections of 3D Potts volumes with the bridge's 3D growths")
    parser.add_argument("--sections-3d", action="store_true",
                        help="only the head fitted on sections of 3D Potts volumes, with its 2D and 3D growth table")
    parser.add_argument("--tables", nargs="+", choices=("2d", "3d"), default=["2d", "3d"],
                        help="with --sections-3d: the growth tables whose volumes are made and judged")
    parser.add_argument("--train-volumes", type=int, default=4, choices=range(1, 17),
                        help="with --sections-3d: 64^3 volumes whose sections the head learns from (1-16)")
    parser.add_argument("--reference-volumes", type=int, default=4, choices=range(4, 17),
                        help="with --sections-3d: held-out 64^3 volumes whose sections make the real reference (4-16)")
    parser.add_argument("--walks-3d", type=int, default=1, choices=range(1, 11),
                        help="with --sections-3d: sets of --volumes sampled fingerprints (seeds 0, 1, ...; 1-10)")
    parser.add_argument("--section-sizes", action="store_true",
                        help="only how far 3D growths land from the held-out sections' mean area, per growth factor")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    print("load:", os.getloadavg())
    if args.section_sizes:
        print("| stage | target area (px) | growth factor | judged / target, seeds 0-2 | mean | s per volume |\n"
              "|---|---:|---:|---|---:|---:|")
        for stage in args.stages:
            for line in section_size_rows(stage):
                print(line, flush=True)
        return
    if args.potts_3d:
        print("| stage | structure | seconds | | |\n|---|---|---:|---|---|")
        for stage in args.stages:
            for line in potts_3d_rows(stage):
                print(line, flush=True)
        return
    model = m.load_builtin_model("potts-grains")
    if args.sections_3d:
        print("| stage | volumes from sampled fingerprints | seconds | per reference: sections inside the real 2 sd "
              "(grain count / mean area / R-n slope, %), volumes that pass, all sections |\n|---|---|---:|---|")
        for stage in args.stages:
            for line in sections_3d_rows(model, stage, args.volumes, tuple(args.tables), args.train_volumes,
                                         args.reference_volumes, args.walks_3d):
                print(line, flush=True)
        return
    print("| stage | generated | seconds | inside the real 2 sd: grain count / mean area / R-n slope (%) | passes |")
    print("|---|---|---:|---|---|")
    for stage in args.stages:
        for line in stage_rows(model, stage, args.volumes, args.walks, args.reference_maps):
            print(line, flush=True)
    print("load:", os.getloadavg())


if __name__ == "__main__":
    main()
