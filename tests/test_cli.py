"""The ``microfingerprint`` command line, end to end on tiny inputs: exit codes, files written, messages."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from napari_microfingerprint import (
    DescriptorSet,
    archie_exponent,
    characterize,
    descriptor_error,
    make_micrograph,
    make_two_phase,
)
from napari_microfingerprint.cli import main
from napari_microfingerprint.cli._commands import EXIT_INPUT, EXIT_NO_DISPLAY, EXIT_OK, build_parser
from napari_microfingerprint.core.io import read_microstructure

COMMANDS = ("characterize", "reconstruct", "match", "merge", "interpolate", "smooth", "check", "segment", "train",
            "encode", "convert", "view")


@pytest.fixture
def slice_tif(tmp_path: Path) -> Path:
    """A two-phase 32 x 32 slice stored as 0 / 255, as segmented images often are."""
    path = tmp_path / "slice.tif"
    tifffile.imwrite(path, (make_two_phase((32, 32), 0.4, 2.0, seed=0) * 255).astype(np.uint8))
    return path


def test_every_subcommand_has_help(capsys):
    for command in ("",) + COMMANDS:
        with pytest.raises(SystemExit) as stop:
            main([command, "--help"] if command else ["--help"])
        assert stop.value.code == 0
        out = capsys.readouterr().out
        assert "usage: microfingerprint" in out
    assert set(COMMANDS) <= set(build_parser()._subparsers._group_actions[0].choices)


def test_characterize_reconstruct_check(slice_tif, tmp_path, capsys):
    desc = tmp_path / "desc"
    assert main(["-q", "characterize", str(slice_tif), "--limit-to", "4", "-o", str(desc)]) == EXIT_OK
    assert "values 0, 255 read as phases 0..1" in capsys.readouterr().err
    target = DescriptorSet.load(desc)
    assert target.n_phases == 2 and target.limit_to == 4
    out = tmp_path / "vol.vti"
    code = main(["-q", "reconstruct", str(desc) + ".npz", "--shape", "16", "--max-iter", "40", "--device", "cpu",
                 "-o", str(out)])
    assert code == EXIT_OK
    vol = read_microstructure(out).data
    assert vol.shape == (16, 16, 16) and set(np.unique(vol)) == {0, 1}
    # the file holds the reconstruction of that target: its descriptor error is small
    assert max(max(v.values()) for v in descriptor_error(vol, target).values()) < 0.5
    capsys.readouterr()
    assert main(["-q", "check", str(out), "--reference", str(slice_tif), "--no-transport", "--windows", "3",
                 "--csv", str(tmp_path / "check.csv")]) == EXIT_OK
    err = capsys.readouterr().err
    assert "metrics outside 2 sd of the reference" in err
    table = pd.read_csv(tmp_path / "check.csv")
    assert {"phase", "metric", "inside"} <= set(table.columns)


def test_match_ensemble_serial_and_resume(slice_tif, tmp_path, capsys):
    out = tmp_path / "ens"
    args = ["-q", "match", str(slice_tif), "--shape", "16", "16", "16", "--limit-to", "4", "--max-iter", "30",
            "--device", "cpu", "--n", "3", "--scheduler", "serial", "-o", str(out)]
    assert main(args) == EXIT_OK
    manifest = pd.read_csv(out / "manifest.csv")
    assert sorted(manifest["seed"]) == [0, 1, 2] and (manifest["status"] == "done").all()
    files = sorted(out.glob("volume_*.npy"))
    assert len(files) == 3 and all(np.load(f).shape == (16, 16, 16) for f in files)
    stamps = [f.stat().st_mtime_ns for f in files]
    assert main(args) == EXIT_OK  # a rerun finds every seed done
    assert [f.stat().st_mtime_ns for f in files] == stamps
    assert "3 of 3 volumes" in capsys.readouterr().err


def test_match_of_a_volume_floors_a_3d_output_at_its_own_exponent(tmp_path, capsys):
    vol = make_two_phase((24, 24, 24), 0.3, 2.5, seed=1)
    np.save(tmp_path / "vol.npy", vol)
    common = ["--limit-to", "4", "--max-iter", "20", "--device", "cpu"]
    assert main(["-q", "match", str(tmp_path / "vol.npy"), *common, "-o", str(tmp_path / "v.npy")]) == EXIT_OK
    assert f"own Archie exponent: phase 1 m = {archie_exponent(vol, 1):.2f}" in capsys.readouterr().err
    # a 2D output has no floor, so no exponent is solved for it (this raised an error about the exponent)
    assert main(["-q", "match", str(tmp_path / "vol.npy"), "--shape", "24", "24", *common,
                 "-o", str(tmp_path / "s.npy")]) == EXIT_OK
    assert "Archie exponent" not in capsys.readouterr().err
    assert read_microstructure(tmp_path / "s.npy").data.shape == (24, 24)


def test_smooth_merge_interpolate_convert(tmp_path):
    lab = make_two_phase((24, 24, 24), 0.35, 2.0, seed=1)
    noisy = lab.copy()
    rng = np.random.default_rng(0)
    flip = rng.random(lab.shape) < 0.05
    noisy[flip] = 1 - noisy[flip]
    np.save(tmp_path / "noisy.npy", noisy)
    assert main(["-q", "smooth", str(tmp_path / "noisy.npy"), "--sigma", "1", "-o", str(tmp_path / "s.tif")]) == 0
    smoothed = read_microstructure(tmp_path / "s.tif").data
    assert smoothed.sum() == noisy.sum()  # volume fractions kept
    assert np.count_nonzero(smoothed != lab) < np.count_nonzero(noisy != lab)  # the flipped voxels are mostly undone

    for name, seed in (("a", 2), ("b", 3)):
        characterize(make_two_phase((32, 32), 0.4, 2.0 + seed, seed=seed), limit_to=4).save(tmp_path / name)
    assert main(["-q", "merge", "--yx", str(tmp_path / "a.json"), "--zx", str(tmp_path / "b.npz"),
                 "--tolerance", "10", "-o", str(tmp_path / "m")]) == 0
    assert DescriptorSet.load(tmp_path / "m").axes == ["z", "y"]
    assert main(["-q", "interpolate", str(tmp_path / "a"), str(tmp_path / "b"), "--steps", "3",
                 "-o", str(tmp_path / "i")]) == 0
    steps = [DescriptorSet.load(tmp_path / f"i_{k}") for k in range(3)]
    mid = (steps[0].values["2d"]["s2"] + steps[2].values["2d"]["s2"]) / 2
    np.testing.assert_allclose(steps[1].values["2d"]["s2"], mid)

    raw = tmp_path / "vol.raw"
    lab.astype(np.uint8).tofile(raw)
    assert main(["-q", "convert", str(raw), "--raw-shape", "24", "24", "24", "--spacing", "2", "1", "1",
                 "-o", str(tmp_path / "vol.vti")]) == 0
    back = read_microstructure(tmp_path / "vol.vti")
    np.testing.assert_array_equal(back.data, lab)
    assert back.scale == (2.0, 1.0, 1.0)


def test_segment_file_and_folder(tmp_path):
    images = tmp_path / "imgs"
    images.mkdir()
    for k in range(3):
        truth = make_two_phase((48, 48), 0.4, 3.0, seed=k)
        tifffile.imwrite(images / f"m{k}.tif", make_micrograph(truth, noise=0.05, seed=k).astype(np.float32))
    assert main(["-q", "segment", str(images / "m0.tif"), "-o", str(tmp_path / "m0_labels.tif")]) == 0
    one = read_microstructure(tmp_path / "m0_labels.tif").data
    assert one.shape == (48, 48) and set(np.unique(one)) == {0, 1}
    assert main(["-q", "segment", str(images), "-o", str(tmp_path / "seg")]) == 0
    table = pd.read_csv(tmp_path / "seg" / "segmentation.csv")
    assert len(table) == 3


def test_bad_inputs_give_exit_codes_and_messages(tmp_path, slice_tif, capsys):
    corrupt = tmp_path / "broken.tif"
    corrupt.write_bytes(b"II*\x00 this is not a tiff")
    assert main(["-q", "characterize", str(corrupt), "-o", str(tmp_path / "d")]) == EXIT_INPUT
    assert "broken.tif could not be read" in capsys.readouterr().err
    assert main(["-q", "characterize", str(tmp_path / "missing.tif"), "-o", str(tmp_path / "d")]) == EXIT_INPUT
    assert "does not exist" in capsys.readouterr().err
    grey = tmp_path / "grey.npy"
    np.save(grey, np.random.default_rng(0).random((32, 32)))
    assert main(["-q", "match", str(grey), "--shape", "16", "-o", str(tmp_path / "o.npy")]) == EXIT_INPUT
    assert "segment it first" in capsys.readouterr().err
    characterize(make_two_phase((32, 32), 0.4, 2.0, seed=0), limit_to=4).save(tmp_path / "d")
    assert main(["-q", "reconstruct", str(tmp_path / "d"), "-o", str(tmp_path / "o.npy")]) == EXIT_INPUT
    assert "--shape is needed" in capsys.readouterr().err
    assert main(["-q", "reconstruct", str(tmp_path / "d"), "--shape", "6", "-o", str(tmp_path / "o.npy")]) \
        == EXIT_INPUT
    assert "limit_to=4 does not fit" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        main(["match", str(slice_tif), "--shape", "-3", "-o", "x.npy"])
    assert stop.value.code == 2
    env_no_display = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    run = subprocess.run([sys.executable, "-m", "napari_microfingerprint.cli", "view", str(slice_tif)],
                         env=env_no_display, capture_output=True, text=True, timeout=120)
    assert run.returncode == EXIT_NO_DISPLAY and "no display found" in run.stderr


def test_console_script_runs_without_napari_or_qt(slice_tif, tmp_path):
    """A headless cluster node: the command line must work when napari and Qt cannot be imported."""
    script = Path(sys.executable).with_name("microfingerprint")
    assert script.exists(), "the console script is installed with the package"
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    for name in ("napari", "qtpy", "PyQt6", "PyQt5", "PySide6", "magicgui"):
        (blocker / name).mkdir()
        (blocker / name / "__init__.py").write_text(f"raise ImportError('{name} is not installed here')\n")
    env = {**os.environ, "PYTHONPATH": str(blocker)}
    run = subprocess.run([str(script), "match", str(slice_tif), "--shape", "16", "--limit-to", "4",
                          "--max-iter", "30", "--device", "cpu", "-o", str(tmp_path / "v.npy")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert np.load(tmp_path / "v.npy").shape == (16, 16, 16)
    assert "wrote" in run.stderr


def test_progress_is_a_bar_on_a_terminal_and_lines_in_a_log():
    import io

    from napari_microfingerprint.cli._terminal import Reporter
    from napari_microfingerprint.core.progress import Progress

    def steps():
        for k in range(1, 4):
            yield Progress(k, 3, f"step {k}")
        return "result"

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty, log = Terminal(), io.StringIO()
    assert Reporter(tty).run(steps()) == "result" and Reporter(log).run(steps()) == "result"
    assert "\r[" in tty.getvalue() and "100% 3/3 step 3" in tty.getvalue() and tty.getvalue().endswith("\n")
    lines = log.getvalue().splitlines()  # first and last step at least, each a plain time-stamped line
    assert "\r" not in log.getvalue() and lines[0].endswith("1/3 (33%) step 1")
    assert lines[-1].endswith("3/3 (100%) step 3")
    quiet = io.StringIO()
    Reporter(quiet, quiet=True).run(steps())
    assert quiet.getvalue() == ""


def test_view_opens_napari_with_the_widgets(slice_tif, tmp_path):
    if not os.environ.get("DISPLAY"):
        pytest.skip("needs a display (the test suite runs under xvfb-run)")
    shot = tmp_path / "view.png"
    run = subprocess.run([sys.executable, "-m", "napari_microfingerprint.cli", "view", str(slice_tif),
                          "--screenshot", str(shot)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    from skimage.io import imread

    img = imread(shot)
    assert img.ndim == 3 and img.shape[0] > 200 and img.std() > 1  # a real picture of the window


def test_mistakes_are_caught_before_the_work(tmp_path, slice_tif, capsys):
    vol = tmp_path / "vol.npy"
    np.save(vol, make_two_phase((20, 20, 20), 0.4, 2.0, seed=0))
    cases = [
        (["match", str(slice_tif), "--shape", "16", "--limit-to", "4", "--spacing", "1", "2",
          "-o", str(tmp_path / "a.tif")], "--spacing has 2 values for a 3D result"),
        (["match", str(vol), "--shape", "16", "16", "--limit-to", "4", "--check", "-o", str(tmp_path / "b.npy")],
         "cannot be the reference of a 2D result"),
        (["smooth", str(tmp_path / "grey.npy"), "-o", str(tmp_path / "c.npy")], "smooth works on phase maps"),
        (["convert", str(vol), "-o", str(tmp_path / "vol.npy" / "inside.npy")], "check the path"),
        (["match", str(slice_tif), "--shape", "16", "--limit-to", "4", "--device", "tpu",
          "-o", str(tmp_path / "d.npy")], "unknown device"),
    ]
    np.save(tmp_path / "grey.npy", np.random.default_rng(0).integers(0, 255, (16, 16)))
    for args, message in cases:
        assert main(["-q", *args]) == EXIT_INPUT, args
        assert message in capsys.readouterr().err, args
    assert not any((tmp_path / name).exists() for name in ("a.tif", "b.npy", "c.npy", "d.npy"))
