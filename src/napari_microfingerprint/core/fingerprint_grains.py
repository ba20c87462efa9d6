"""Fingerprint -> grain size -> grain structure: sharp 2D and 3D grain maps from any point of a grain model's
latent space (issue 13, the bridge of :mod:`.fingerprint_structures` for grain models).

A grain VAE (trained on distance maps, paper 000) decodes blurred distance maps whose watershed grains have the
wrong count and size. The package already grows grain structures with the physics of paper 000: boundaries that
move by mean curvature (the Potts model of :func:`~.synthetic.potts_grain_growth`, the mechanism of paper 000
Eq. 1-6). The bridge joins the two: every window of the training label maps gives a pair (its fingerprint, its
mean grain area as :func:`~.characterization.grain_statistics` measures it); a ridge regression (scikit-learn's
``RidgeCV``, its penalty chosen by leave-one-out cross-validation) on the standardised fingerprints predicts the
log mean grain area and R-n slope (radius against neighbour count, paper 000 Fig. 4) of any fingerprint. A
linear head, because a k-nearest-neighbour one failed on the shipped 256-dimensional model: held-out R^2 -0.13
and 0.05 for the log area (early and late Potts stage), and its predictions for sampled fingerprints were 5-8 %
too small with a quarter of the real spread; the ridge regression has R^2 0.69 and 0.51 and predicts the real
mean (BENCHMARKS.md, issue 13). A periodic Voronoi
tessellation grows under the Potts model until its windows (the sections of a 3D volume) reach the predicted mean
area. How far it grows (its growth factor: the final over the starting mean area) sets its age, and with it the
R-n slope: a young, Voronoi-like structure has a flatter one than an old one of the same grain size. The head
tabulates the slope reached against the growth factor at a few grain sizes of the training windows, and each
fingerprint grows by the factor whose slope is nearest its own prediction. The slope levels off after the first
steps, so several factors reach slopes too close to tell apart; among those, a second mark of age decides: the
spread of the grain areas (their coefficient of variation in a window), which keeps widening as a Voronoi start
coarsens. The head predicts it from the fingerprint as it does the slope, and the table holds each growth's. On
sections of late-stage 3D Potts grains the slopes of factors 1.25-4 are alike, and their area spreads (0.87 for
1.25, 0.92 for 1.6, 0.99-1.02 for 2.5, 1.02-1.03 for 4, against the material's 0.89-0.91) tell the material's age; the
default factor 2.5 these ties fell to before grows an older structure, whose sections' mean areas scatter 8-10 %
more than those of growths by 1.25 (BENCHMARKS.md, issue 13). Sections of 3D growths order their slopes differently
from 2D growths of the same size (3D coarsens more slowly, and at 45-65 px the bare tessellation has the flattest
sections), so a head fitted with ``volumes=True`` also tabulates the slopes of the sections of 3D growths, and a
volume takes its growth factor from that table: the right choice when the training maps are sections of 3D grains,
as micrographs are (on sections of young 3D Potts grains it brought the volumes' section slopes from 77 % to 91 %
inside the material's spread; BENCHMARKS.md, issue 13). A 2D map grows in a box of several windows, whose windows
scatter around their mean about as much as the real windows do between themselves; the box's crop nearest the
predicted size is returned, so that the fingerprint, not that scatter, sets the size (returning a fixed crop gave
83-88 % of late-stage grain counts inside the real spread, the nearest crop 92-97 %). A volume cannot be cropped
that way: its sections are windows that scatter by themselves, so it grows to the material's part of the
prediction (:meth:`GrainHead.material_share`). Every latent walk then yields grain maps in 2D and volumes in 3D.
"""
from __future__ import annotations

import math
import threading
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from itertools import product

import numpy as np
from skimage.measure import label
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from .characterization import grain_statistics
from .progress import Progress, run_to_end
from .synthetic import potts_grain_growth, voronoi_labels
from .threads import governed
from .vae.model_io import check_model, encode
from .vae.training import VAEModel
from .validation import InputError, check_int, check_labels, check_shape

#: Potts temperature of the growth (as :func:`~.synthetic.make_grain_structure`).
TEMPERATURE = 0.5
#: The growth factors (final over starting mean window area) the head tabulates; 1 is a Voronoi tessellation.
#: The R-n slope rises by about 0.03 per Monte Carlo step in the first few (Voronoi 0.58, the early Potts stage
#: of 4 steps 0.65-0.67, 1.01 in 2-4 steps 0.65, 1.02 in 4-7 steps 0.71; 2D, 50 px grains), hence 1.01.
GROWTHS = (1.0, 1.01, 1.25, 1.6, 2.5, 4.0)
#: Growths averaged per entry of the head's table (one growth's windows leave an sd of about 0.05 in the slope).
TABLE_SEEDS = 2
#: The growth factor when no R-n slope is predicted, and the one preferred among factors the table cannot tell
#: apart.
DEFAULT_GROWTH = 2.5
#: Table entries whose R-n slopes differ by less than this are not told apart: an entry averages
#: :data:`TABLE_SEEDS` growths (sd about 0.035), so the difference of two has an sd of about 0.05. Picking the
#: strictly nearest let that noise decide between factors 1.25-4 on late-stage Potts grains (their entries
#: 1.47-1.56), which widened the generated slopes (sd 0.37 against the real 0.24; 84 % inside).
SLOPE_TOLERANCE = 0.1
#: 3D growths averaged per entry of the head's table of 3D growths (:func:`growth_table_3d`).
TABLE_SEEDS_3D = 2
#: The same for the table of 3D growths. Its entries lie closer together than the 2D ones: across the factors,
#: 0.75-0.86 at 46 px and 0.64-0.76 at 34 px (late and early 3D Potts sections), where one section's slope has
#: an sd of 0.05-0.08. With 16 sections per entry (sd about 0.025, adjacent entries 0.03-0.04 apart where they
#: should rise), a tolerance of 0.1 let every volume take the default growth, and 0.06 still 1.6-2.5 where
#: 1-1.01 fitted (early stage). One growth measured on 48 sections (16 along each axis, 4 px apart at 64 px) has
#: an sd of 0.009-0.013 (two seeds' differences over the 18 entries of early and of late 3D Potts sections); an
#: entry averages :data:`TABLE_SEEDS_3D` growths, so the difference of two entries has an sd of 0.009-0.013, and
#: the tolerance is 2.3-3.3 times that. With one growth per entry (and 0.04), factor 1.6 (0.71 at 36 px) came
#: within reach of 1-1.01 (0.67) on early-stage sections; two growths put it at 0.72, with 1.25-4.
SLOPE_TOLERANCE_3D = 0.03
#: Table entries whose grain-area coefficients of variation differ by less than this are not told apart either.
#: In the 2D table (:data:`TABLE_SEEDS` growths of 16 windows each per entry) one growth's CV has an sd of
#: 0.011-0.017 and the difference of two entries one of 0.018 (four seeds, factors 1-4 at 30, 50 and 70 px),
#: while factors 1.25-4 lie 0.01-0.04 apart.
AREA_CV_TOLERANCE = 0.04
#: The same for the table of 3D growths (48 sections per growth): one growth's CV has an sd of 0.014 and 0.018
#: (two seeds' differences over the 18 entries of early- and of late-stage 3D Potts sections), and so has the
#: difference of two entries of :data:`TABLE_SEEDS_3D` growths; the tessellation's entries and those grown 1.01
#: times lie 0.001-0.008 apart, factors 1.25-4 0.01-0.10.
AREA_CV_TOLERANCE_3D = 0.03
#: A 2D structure grows in a periodic box of at least this many windows a side, then is cropped: grown in a box
#: of one window, the Potts structures of paper 000's stages have windows with 26-51 % too large mean areas (a
#: grain wrapping around the box counted once) and 12-26 % too flat R-n slopes.
BOX_WINDOWS = 4
#: The growth stops after this many Monte Carlo steps even if the grains are still too small.
MAX_STEPS = 2000
#: Sections per axis (z, y and x) on which a 3D volume's windows are measured.
SECTIONS_PER_AXIS = 16
#: Ridge penalties tried by the head's leave-one-out cross-validation (on standardised fingerprints).
RIDGE_ALPHAS = tuple(np.logspace(-2, 4, 13))


@dataclass
class GrainHead:
    """Fingerprint -> log mean grain area and R-n slope of a grain model's windows (the regressions), the table
    of R-n slopes reached by each growth factor of :data:`GROWTHS` at a few grain sizes, and what a window is."""

    area: Pipeline
    slope: Pipeline | None
    table_areas: np.ndarray  # (A,) mean window areas of the table's rows
    table_slopes: np.ndarray  # (A, len(GROWTHS)) R-n slope reached (NaN: fitted without a growth table)
    patch_size: int
    latent_dim: int
    n_windows: int
    #: The training windows' smallest and largest mean area, R-n slope and grain-area coefficient of variation: a
    #: linear head extrapolates without bound, so a fingerprint far from the training ones (a long latent walk) is
    #: held to what was seen.
    area_range: tuple[float, float] = (0.0, math.inf)
    slope_range: tuple[float, float] = (-math.inf, math.inf)
    area_cv_range: tuple[float, float] = (-math.inf, math.inf)
    #: (A, len(GROWTHS)) R-n slope of the sections of 3D growths (``fit_grain_head(..., volumes=True)``); None
    #: when only 2D growths were tabulated.
    table_slopes_3d: np.ndarray | None = None
    #: Fingerprint -> the window's grain-area coefficient of variation (:func:`window_ages`), and that of each
    #: growth of the 2D and the 3D table (same shapes as theirs): the second mark of a structure's age, which picks
    #: among the factors whose slopes the tables cannot tell apart. None: fitted without them.
    area_cv: Pipeline | None = None
    table_area_cvs: np.ndarray | None = None
    table_area_cvs_3d: np.ndarray | None = None
    #: What splits a predicted area into the material's part and the window's (:meth:`material_share`): the
    #: training windows' mean area (the arithmetic mean, which a growth's windows reach: :func:`window_mean_area`)
    #: and sd of log mean area, the sd of the area regression's (log) predictions for them, and
    #: the sd of log mean area over the windows of each growth of the 2D and the 3D table (same shapes as theirs).
    #: NaN and None: fitted without them, and a volume takes the window's prediction.
    mean_area: float = math.nan
    log_area_sd: float = math.nan
    prediction_log_sd: float = math.nan
    table_window_sds: np.ndarray | None = None
    table_window_sds_3d: np.ndarray | None = None

    def predict(self, z, volume: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The predicted mean grain area (pixels, as measured on one window) and R-n slope (NaN without a slope
        regression) of each fingerprint of ``z``, each within the training windows' range. For a ``volume``, the
        area is the material's part of the prediction (:meth:`material_share`): its deviation in log from the
        training windows' mean area, shrunk by that share (a share of 0 gives that mean)."""
        from .analysis import as_fingerprints

        zz = as_fingerprints(z, "z", self.latent_dim)
        slopes = self.slope.predict(zz) if self.slope is not None else np.full(len(zz), np.nan)
        log_areas = self.area.predict(zz)
        if volume and math.isfinite(self.mean_area):
            centre = math.log(self.mean_area)
            log_areas = centre + self.material_share(volume) * (log_areas - centre)
        return np.clip(np.exp(log_areas), *self.area_range), np.clip(slopes, *self.slope_range)

    def material_share(self, volume: bool = False) -> float:
        """The share of the predicted log areas' spread that belongs to the material rather than to the window.
        A fingerprint describes one window, whose mean grain area scatters around its material's by the window's
        finite size. A volume's sections are such windows and scatter by themselves, so a volume grown to the
        window's prediction scatters twice (sections of late-stage 3D Potts volumes: 3.9-4.1 px against the
        material's 3.5; BENCHMARKS.md, issue 13). A grown structure's windows scatter only by their finite size:
        their sd of log mean area, averaged in square over the table's growths (the 3D table's sections for a
        ``volume`` when the head has one), estimates that window part. The material's part of the training windows'
        variance is what is left of theirs, and the share is its sd over the sd of the regression's predictions,
        at most 1. A head fitted on one material has a share near 0, and its volumes take that material's size;
        one fitted on several keeps their differences. 1 without a table (nothing is split)."""
        three_d = volume and self.table_window_sds_3d is not None
        sds = self.table_window_sds_3d if three_d else self.table_window_sds
        if sds is None or not np.isfinite(sds).any() or not self.prediction_log_sd > 0:
            return 1.0
        material = math.sqrt(max(0.0, self.log_area_sd**2 - float(np.nanmean(np.square(sds)))))
        return min(1.0, material / self.prediction_log_sd)

    def predict_area_cv(self, z) -> np.ndarray:
        """The predicted grain-area coefficient of variation of each fingerprint's window (NaN without that
        regression), within the training windows' range."""
        from .analysis import as_fingerprints

        zz = as_fingerprints(z, "z", self.latent_dim)
        if self.area_cv is None:
            return np.full(len(zz), np.nan)
        return np.clip(self.area_cv.predict(zz), *self.area_cv_range)

    def growth_for(self, mean_area: float, rn_slope: float, volume: bool = False, area_cv: float = math.nan
                   ) -> float:
        """The growth factor of :data:`GROWTHS` whose R-n slope, interpolated in log area from the table (of 3D
        growths' sections for a ``volume`` when the head has one), is nearest ``rn_slope``. Of the factors whose
        slopes lie within :data:`SLOPE_TOLERANCE` of that factor's (which the table cannot tell apart from it;
        :data:`SLOPE_TOLERANCE_3D` in the 3D table), those whose tabulated grain-area coefficient of variation
        lies within :data:`AREA_CV_TOLERANCE` (:data:`AREA_CV_TOLERANCE_3D`) of the one nearest ``area_cv`` when
        both are known; of what is left, the one closest to :data:`DEFAULT_GROWTH` in log growth.
        :data:`DEFAULT_GROWTH` also when the slope or the table is unknown."""
        if not math.isfinite(rn_slope):
            return DEFAULT_GROWTH
        three_d = volume and self.table_slopes_3d is not None
        table = self.table_slopes_3d if three_d else self.table_slopes
        cvs = self.table_area_cvs_3d if three_d else self.table_area_cvs
        tolerance, cv_tolerance = ((SLOPE_TOLERANCE_3D, AREA_CV_TOLERANCE_3D) if three_d
                                   else (SLOPE_TOLERANCE, AREA_CV_TOLERANCE))
        x = np.log(self.table_areas)

        def at_area(values: np.ndarray) -> np.ndarray:
            return np.array([np.interp(math.log(mean_area), x, values[:, j]) for j in range(len(GROWTHS))])

        reached = at_area(table)
        miss = np.abs(reached - rn_slope)
        if not np.isfinite(miss).any():
            return DEFAULT_GROWTH
        best = reached[int(np.nanargmin(miss))]
        near = [j for j in range(len(GROWTHS)) if abs(reached[j] - best) <= tolerance]
        spread = at_area(cvs) if cvs is not None and math.isfinite(area_cv) else None
        if spread is not None and np.isfinite(spread[near]).all():
            nearest = spread[min(near, key=lambda j: abs(spread[j] - area_cv))]
            near = [j for j in near if abs(spread[j] - nearest) <= cv_tolerance]
        return GROWTHS[min(near, key=lambda j: abs(math.log(GROWTHS[j] / DEFAULT_GROWTH)))]


def _sections(labels: np.ndarray) -> list[np.ndarray]:
    """A 2D map itself, or up to :data:`SECTIONS_PER_AXIS` evenly spaced sections along each axis of a 3D
    volume, each labelled by its face-connected pieces as a micrograph of the section shows them: a grain that
    meets the section twice, or only at a pixel's corner, is two grains there. Counted by their 3D labels
    instead, the sections of Voronoi volumes had 3.5 % larger grains than the same sections relabelled, and a
    volume grown to a size by that count was judged 3.5 % too small (BENCHMARKS.md, issue 13)."""
    if labels.ndim == 2:
        return [labels]
    return [_pieces(np.take(labels, k, axis=axis)) for axis, n in enumerate(labels.shape)
            for k in range(0, n, max(1, n // SECTIONS_PER_AXIS))]


def _windows(labels: np.ndarray, window: int) -> list[np.ndarray]:
    """The non-overlapping ``window``-sided windows of a 2D label map, or of the sections of a 3D one
    (:func:`_sections`)."""
    sections = _sections(labels)
    return [s[y:y + window, x:x + window] for s in sections for y in range(0, s.shape[0] - window + 1, window)
            for x in range(0, s.shape[1] - window + 1, window)]


def window_mean_area(labels: np.ndarray, window: int) -> float:
    """Mean over the windows (:func:`_windows`) of their mean grain area: the window's pixels over its number of
    distinct labels, which is :func:`~.characterization.grain_statistics`' ``mean_area`` of a gap-free map."""
    return float(np.mean([w.size / np.unique(w).size for w in _windows(labels, window)]))


def window_area_scatter(labels: np.ndarray, window: int) -> float:
    """Sd (ddof 1) over the windows (:func:`_windows`) of the log of their mean grain area, counted as
    :func:`window_mean_area` counts it: how far a structure's windows scatter around its mean by their finite size
    alone (NaN for a single window)."""
    logs = [math.log(w.size / np.unique(w).size) for w in _windows(labels, window)]
    return float(np.std(logs, ddof=1)) if len(logs) > 1 else math.nan


def _table_entry(labels: np.ndarray, window: int) -> tuple[float, float, float]:
    """What the head's tables hold for one growth: its R-n slope and grain-area coefficient of variation
    (:func:`window_ages`) and its windows' scatter (:func:`window_area_scatter`)."""
    return (*window_ages(labels, window), window_area_scatter(labels, window))


def _pieces(labels: np.ndarray) -> np.ndarray:
    """Labels of the face-connected pieces of each grain of a box or section: a grain that wraps around a
    periodic box is as many grains as a crop of a larger structure would show."""
    return label(labels, background=-1, connectivity=1).astype(np.int32)


def window_ages(labels: np.ndarray, window: int) -> tuple[float, float]:
    """Two marks of a grain structure's age, each the mean over the windows of a 2D label map (or of a 3D
    volume's :func:`_sections`): the R-n slope (:func:`~.characterization.grain_statistics`; windows with too few
    inner grains for a slope are left out) and the grain areas' coefficient of variation (their standard
    deviation over their mean, every grain of the window counted as :func:`window_mean_area` counts it). The
    slope rises over the first Monte Carlo steps and then levels off; the areas' spread keeps widening as the
    grains coarsen away from the Voronoi start (sections of late-stage 3D Potts volumes, 50.5 px: 0.83 for the
    tessellation, 0.88 grown 1.25 times, 0.99 grown 2.5 times, where the slopes are 0.80, 0.87 and 0.89)."""
    stats = [grain_statistics(w) for w in _windows(labels, window)]
    slopes = [summary["rn_slope"] for _, summary in stats]
    slope = float(np.nanmean(slopes)) if np.isfinite(slopes).any() else math.nan
    return slope, float(np.mean([np.std(table["area"]) / np.mean(table["area"]) for table, _ in stats]))


@governed
def grow_grains_iter(shape: Sequence[int], mean_area: float, window: int, growth: float = DEFAULT_GROWTH,
                     seed: int = 0, device: str = "auto", cancel: threading.Event | None = None
                     ) -> Generator[Progress, None, np.ndarray]:
    """Generator form of :func:`grow_grains`: yields :class:`Progress` after each growth step; a set ``cancel``
    event stops the growth, which returns the grains grown so far. Torch's threads follow the machine's load
    (:func:`~.threads.governed`)."""
    shp = check_shape(shape, "shape")
    window = check_int(window, "window", 4)  # the side of the windows whose grains are measured
    if min(shp[-2:]) < window:
        raise InputError(f"shape {shp} must have sections of at least {window} x {window} (a window).")
    if not (math.isfinite(mean_area) and 1.0 < mean_area < window * window):
        raise InputError(f"mean_area={mean_area!r} must lie between 1 and a window's {window * window} pixels.")
    if not (math.isfinite(growth) and growth >= 1.0):
        raise InputError(f"growth={growth!r} must be a number of at least 1 (1: a Voronoi tessellation).")
    box = tuple(max(s, BOX_WINDOWS * window) for s in shp) if len(shp) == 2 else shp
    start = mean_area / growth
    # a Poisson-Voronoi volume of density rho has 1.458 rho^(2/3) grains per unit section area (stereology:
    # N_A = N_V times the mean caliper diameter, 1.458 rho^(-1/3) for Poisson-Voronoi cells)
    count = box[-1] * box[-2] / start
    n = count if len(box) == 2 else (count / (1.458 * box[-1] * box[-2])) ** 1.5 * float(np.prod(box))
    for _ in range(3):  # windows cut grains, so a window's mean area is below the tessellation's: correct n twice
        n = max(2, min(int(round(n)), int(np.prod(box)) // 4))
        labels = voronoi_labels(box, n, seed=seed)
        area = window_mean_area(labels, window)
        n *= (area / start) ** (1.5 if len(box) == 3 else 1.0)  # a section's grain area goes as n^(-2/3) in 3D
    # the growth counts from the start as drawn, whose area misses ``start`` by 1-3 %: stopping at ``mean_area``
    # instead let that miss set how many Monte Carlo steps a young structure took, and with them its R-n slope
    goal = growth * area
    done, previous = 0, (labels, area)
    yield Progress(0, MAX_STEPS, f"grains grown to a mean area of {area:.0f} of {goal:.0f} px")
    while area < goal and done < MAX_STEPS and not (cancel is not None and cancel.is_set()):
        steps = max(1, done // 16)  # about 6 % more area per round (Potts growth: area linear in time)
        previous = (labels, area)
        labels = potts_grain_growth(labels, [steps], temperature=TEMPERATURE, seed=seed + done, device=device)[0]
        done += steps
        area = window_mean_area(labels, window)
        yield Progress(min(done, MAX_STEPS), MAX_STEPS, f"grains grown to a mean area of {area:.0f} of "
                       f"{goal:.0f} px ({done} Monte Carlo steps)")
    if abs(math.log(previous[1] / goal)) < abs(math.log(area / goal)):
        labels = previous[0]
    return _nearest_crop(labels, shp, mean_area, window)


def _nearest_crop(box: np.ndarray, shape: tuple[int, ...], mean_area: float, window: int) -> np.ndarray:
    """Of the non-overlapping ``shape``-sized crops of a grown 2D ``box`` (one crop for a 3D volume, which grows
    in its own box), the one whose windows' mean grain area is nearest ``mean_area`` in log, as its connected
    pieces. The growth stops on the mean of all the box's windows, and one window scatters around that mean by
    about 10 % (late Potts stage), as much as the real windows scatter between themselves; a fixed crop would add
    that scatter once more to the spread of the predictions (generated areas sd 12.9 px against the real 10)."""
    starts = [range(0, b - s + 1, s) for b, s in zip(box.shape, shape)]
    crops = [_pieces(box[tuple(slice(o, o + s) for o, s in zip(offset, shape))]) for offset in product(*starts)]
    if len(crops) == 1:
        return crops[0]
    return min(crops, key=lambda c: abs(math.log(window_mean_area(c, window) / mean_area)))


def grow_grains(shape: Sequence[int], mean_area: float, window: int, growth: float = DEFAULT_GROWTH,
                seed: int = 0, device: str = "auto") -> np.ndarray:
    """A 2D grain map or 3D grain volume of ``shape`` whose ``window``-sided windows (of its sections along each
    axis, each by its connected pieces: :func:`_sections`) have a mean grain area close to ``mean_area`` pixels:
    a periodic Voronoi tessellation with ``growth`` times smaller grains coarsened by the Potts model
    (:func:`~.synthetic.potts_grain_growth`, boundaries moving by curvature, paper 000 Eq. 1-6) until its area
    has grown ``growth`` times from the tessellation as drawn (whose area misses ``mean_area / growth`` by
    1-3 %); the snapshot nearer to that (in log area) is kept. A 2D map
    grows in a box of :data:`BOX_WINDOWS` windows a side; of its non-overlapping crops of ``shape``, the one
    nearest ``mean_area`` is returned. Labels are the connected pieces of the crop (a grain that wraps around
    the periodic box or leaves the crop counts as its pieces, as in a crop of a larger structure)."""
    return run_to_end(grow_grains_iter(shape, mean_area, window, growth, seed, device))


def fit_grain_head(model: VAEModel, label_maps: Sequence[np.ndarray], stride: int | None = None,
                   seed: int = 0, device: str = "auto", volumes: bool = False, growth_table: bool = True
                   ) -> GrainHead:
    """Pair the fingerprint of every window of the grain ``label_maps`` (at ``stride``, default a quarter patch)
    with the window's mean grain area, R-n slope and grain-area coefficient of variation, fit the ridge
    regressions from one to the others (log area; module docstring), and tabulate the R-n slope and area
    coefficient of variation (:func:`window_ages`) that each growth factor of :data:`GROWTHS` reaches at the
    10th, 50th and 90th percentile of the windows' mean areas (2D growths of :data:`BOX_WINDOWS` windows a side,
    :data:`TABLE_SEEDS` per entry). With ``volumes`` also the slope of the sections of 3D growths, one patch a
    side, :data:`TABLE_SEEDS_3D` growths per entry measured on their :func:`_sections` (48 at 64 px):
    :meth:`GrainHead.growth_for` uses that table for volumes. It is slow (its 36 3D growths took 542 s and 731 s
    for 64 px early and late Potts grains on two CPU cores), and it is the right table when the label maps are
    sections of 3D grains.
    Without ``growth_table`` (and ``volumes``) nothing is grown: the head predicts grain sizes and slopes, and
    every structure grows by :data:`DEFAULT_GROWTH` (the 2D table's 36 growths take about a minute at 64 px on two
    cores)."""
    check_model(model)
    if model.config["transform"] != "distance":
        raise InputError("the model was trained on micrographs, not on grain distance maps; use "
                         "fit_descriptor_head for a two-phase model.")
    p = model.config["patch_size"]
    step = max(1, p // 4) if stride is None else check_int(stride, "stride", 1)
    if isinstance(label_maps, np.ndarray) and label_maps.ndim == 2:
        label_maps = [label_maps]
    maps = [check_labels(lab, "label map") for lab in label_maps]
    if any(lab.ndim != 2 or min(lab.shape) < p for lab in maps):
        raise InputError(f"every label map must be 2D and at least {p} x {p} (the model's patch).")
    zs, stats = [], []
    for lab in maps:
        for y in range(0, lab.shape[0] - p + 1, step):
            for x in range(0, lab.shape[1] - p + 1, step):
                table, summary = grain_statistics(lab[y:y + p, x:x + p])
                stats.append((summary["mean_area"], summary["rn_slope"],
                              np.std(table["area"]) / np.mean(table["area"])))
        zs.append(encode(model, lab, stride=step).reshape(-1, model.config["latent_dim"]))
    z, values = np.concatenate(zs), np.asarray(stats, dtype=float)
    if len(z) < 2:
        raise InputError(f"the label maps give {len(z)} window(s); the regression needs at least 2 (lower the "
                         "stride).")

    def ridge(x: np.ndarray, y: np.ndarray) -> Pipeline:
        return make_pipeline(StandardScaler(), RidgeCV(alphas=RIDGE_ALPHAS)).fit(x, y)

    finite = np.isfinite(values[:, 1])
    slope = ridge(z[finite], values[finite, 1]) if finite.sum() >= 2 else None
    areas = np.unique(np.percentile(values[:, 0], [10, 50, 90]))
    table = np.full((len(areas), len(GROWTHS), 3), math.nan)
    if growth_table:
        table = np.array([[np.mean([_table_entry(grow_grains((BOX_WINDOWS * p,) * 2, a, p, g, seed + k, device), p)
                                    for k in range(TABLE_SEEDS)], axis=0) for g in GROWTHS] for a in areas])
    table_3d = growth_table_3d(areas, p, seed, device) if volumes else (None, None, None)
    seen = values[finite, 1] if finite.any() else np.array([-math.inf, math.inf])
    log_areas = np.log(values[:, 0])
    area = ridge(z, log_areas)
    return GrainHead(area, slope, areas, table[..., 0], p, model.config["latent_dim"],
                     len(z), area_range=(float(values[:, 0].min()), float(values[:, 0].max())),
                     slope_range=(float(seen.min()), float(seen.max())),
                     area_cv_range=(float(values[:, 2].min()), float(values[:, 2].max())),
                     table_slopes_3d=table_3d[0], area_cv=ridge(z, values[:, 2]), table_area_cvs=table[..., 1],
                     table_area_cvs_3d=table_3d[1], mean_area=float(values[:, 0].mean()),
                     log_area_sd=float(log_areas.std()), prediction_log_sd=float(area.predict(z).std()),
                     table_window_sds=table[..., 2], table_window_sds_3d=table_3d[2])


def growth_table_3d(areas: Sequence[float], window: int, seed: int = 0, device: str = "auto",
                    seeds: int = TABLE_SEEDS_3D) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The R-n slope, the grain-area coefficient of variation (:func:`window_ages`) and the windows' scatter
    (:func:`window_area_scatter`) of the sections of 3D growths (:func:`grow_grains` of a ``window``-sided cube
    with seeds ``seed`` ... ``seed + seeds - 1``, measured on its :func:`_sections`, averaged over the seeds), each
    an array of a row per mean area of ``areas`` and a column per growth factor of :data:`GROWTHS`:
    :attr:`GrainHead.table_slopes_3d`, :attr:`GrainHead.table_area_cvs_3d` and
    :attr:`GrainHead.table_window_sds_3d`."""
    seeds = check_int(seeds, "seeds", 1)
    table = np.array([[np.mean([_table_entry(grow_grains((window,) * 3, float(area), window, growth, seed + k,
                                                         device), window) for k in range(seeds)], axis=0)
                       for growth in GROWTHS] for area in areas])
    return table[..., 0], table[..., 1], table[..., 2]


def grains_from_fingerprint_iter(head: GrainHead, z, shape: Sequence[int], seed: int = 0, device: str = "auto",
                                 cancel: threading.Event | None = None) -> Generator[Progress, None, np.ndarray]:
    """Generator form of :func:`grains_from_fingerprint` (``cancel`` as :func:`grow_grains_iter`)."""
    if not isinstance(head, GrainHead):
        raise InputError(f"head must be a GrainHead (from fit_grain_head), got {type(head).__name__}.")
    areas, slopes = head.predict(z, volume=len(shape) == 3)
    if len(areas) != 1:
        raise InputError(f"z holds {len(areas)} fingerprints; give one.")
    area = float(np.clip(areas[0], 1.5, head.patch_size**2 / 2))
    growth = head.growth_for(area, float(slopes[0]), len(shape) == 3, float(head.predict_area_cv(z)[0]))
    return (yield from grow_grains_iter(shape, area, head.patch_size, growth, seed, device, cancel))


def grains_from_fingerprint(head: GrainHead, z, shape: Sequence[int], seed: int = 0, device: str = "auto"
                            ) -> np.ndarray:
    """A 2D grain map or 3D grain volume of ``shape`` whose windows have the mean grain area that ``head``
    predicts for the fingerprint ``z``, grown by the factor whose R-n slope is nearest the predicted one, ties
    broken by the predicted grain-area coefficient of variation (:meth:`GrainHead.growth_for`,
    :func:`grow_grains`).

    A volume's sections get the material's part of the predicted grain size (:meth:`GrainHead.material_share`:
    for a head fitted on one material, its windows' mean). Its growth factor comes from the head's table of 3D
    growths' sections when it has one (``fit_grain_head(..., volumes=True)``), otherwise from the table of 2D
    growths, and the sections of 3D growths order their R-n slopes differently (BENCHMARKS.md, issue 13: at
    45-65 px the bare tessellation has the flattest sections, at 100 px the steepest). A volume from a head
    without the 3D table therefore matches the maps' grain size, while its sections' R-n slope follows 3D
    growth and can miss theirs (late 2D Potts stage: 1.22-1.40 against 1.64 ± 0.29; 2D Potts maps are not
    sections of any 3D structure)."""
    return run_to_end(grains_from_fingerprint_iter(head, z, shape, seed, device))
