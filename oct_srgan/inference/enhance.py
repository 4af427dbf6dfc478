"""Whole scans and files: super-resolve every B-scan of a scan, and scan files into enhanced files.

How the pixels are computed (model copy, channels, tiles, precision) is :class:`SRInferer`'s job;
this module walks B-scans and files, counts progress and decides what is written where.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .. import io as scan_io
from ..enums import InferencePrecision, look_up_option
from ..fsutil import overlap_of, remove_dead_temps
from ..errors import ModelError, OctSrganError, ScanError, WriteError
from ..loading import LoadedModel, load_model
from ..precision import choose_inference_precision
from ..scaling import scale_factors
from .bscans import super_resolve_bscans
from .distributed import Share
from .inferer import SRInferer
from .tiling import DEFAULT_OVERLAP


def enhance_scan(
    scan: scan_io.Scan,
    inferer: SRInferer,
    *,
    progress: Callable[[int, int], None] | None = None,
    on_start: Callable[[int, str], None] | None = None,
) -> scan_io.Scan:
    """Super-resolve every B-scan of ``scan``; the result's geometry is rescaled by ``Scan.with_pixels``.

    Grey B-scans go into the inferer's model as they are, or as RGB for a 3-channel model (see
    :class:`SRInferer`). They run one at a time (``batch_size`` tiles per pass when tiled; a tile
    of "auto" runs whole B-scans when they fit the memory budget). ``progress(done, total)`` counts
    what really finishes: tile windows after every forward pass when B-scans are tiled, else
    B-scans, with ``total`` fixed before the first pass, so a progress bar's rate and estimate are
    real; ``on_start(total, unit)`` says beforehand which it is ("tile" or "B-scan").
    """
    model = inferer.model
    if not model.takes_grey:
        raise ModelError(f"model {model.source}: takes {model.channels} input channels; "
                         f"{scan.path or 'the scan'} is grey (1 channel)")
    pixels = scan.pixels
    total, h, w = pixels.shape
    fh, fw = scale_factors(model.scale, model.axes)
    out = np.empty((total, h * fh, w * fw), dtype=np.float32)
    windows = inferer.windows((h, w))
    if on_start is not None:
        on_start(total * windows, "tile" if windows > 1 else "B-scan")
    done = 0

    def finished(count: int) -> None:
        nonlocal done
        done += count
        if progress is not None:
            progress(done, total * windows)

    for index, _, sr in super_resolve_bscans(pixels, inferer, progress=finished):
        out[index] = sr[0, 0].numpy()
    return scan.with_pixels(out)


@dataclass
class EnhanceReport:
    """What :func:`enhance_files` did: outputs written, inputs skipped with a one-line reason."""

    written: list[tuple[Path, Path]] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    comparisons: list[Path] = field(default_factory=list)
    model: LoadedModel | None = None


@dataclass
class _FileProgress:
    """One file's progress: its tiles or B-scans computed, then one step per B-scan written.

    Encoding and saving a large output (and its comparison figure) took 6 s of 14 s in one run; a
    bar that counted only the computing sat at 100 % for all of it.
    """

    path: Path
    writes: int
    progress: Callable[[Path, int, int], None] | None
    on_start: Callable[[Path, int, str], None] | None
    total: int = 0

    def start(self, computed: int, unit: str) -> None:
        self.total = computed + self.writes
        if self.on_start is not None:
            self.on_start(self.path, self.total, unit)

    def computed(self, done: int, computed: int) -> None:
        if self.progress is not None:
            self.progress(self.path, done, computed + self.writes)

    def written(self) -> None:
        if self.progress is not None:
            self.progress(self.path, self.total, self.total)


def _split_name(path: Path) -> tuple[str, str]:
    """File stem and the extension its result gets: the scan's own (``.nii.gz`` as one), or for a
    reader-only format the first suffix of the format it is written as."""
    name = path.name
    fmt = scan_io.format_of_name(path)
    if fmt is None:
        return path.stem, path.suffix
    own = name[: len(name) - len(scan_io.detect.known_suffix(path) or "")]
    target = scan_io.output_format(fmt)
    return own, name[len(own):] if target.name == fmt else target.suffixes[0]


def _check_writable(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OctSrganError(f"{out_dir}: cannot create output folder ({exc.strerror or exc})") from None
    if not out_dir.is_dir() or not os.access(out_dir, os.W_OK | os.X_OK):
        raise OctSrganError(f"{out_dir}: output folder is not writable")


def write_comparison(path: Path, lr: np.ndarray, sr: np.ndarray, scale: int, axes: str, *, title: str) -> Path:
    """Labelled PNG of one B-scan: input (nearest) | bicubic | SR, with the retina zoomed below."""
    from oct_srgan.figures import enhance_comparison, save_figure

    return save_figure(enhance_comparison(lr, sr, scale, axes, title=title), path)


def output_plan(inputs: list[Path], out: Path, suffix: str = "_sr") -> Path | None:
    """The one output file ``out`` names, or None when ``out`` is a folder; refuses what cannot work.

    ``out`` with a scan extension (``.dcm``, ``.nii.gz``, ``.png``...) that is not an existing folder
    names the output file itself: allowed for exactly one input file of the same format (or a
    read-only scanner export, written as that format), so that ``-o out.dcm`` never becomes a folder
    called ``out.dcm`` nor a DICOM saved under another format.
    """
    if not suffix or any(sep in suffix for sep in ("/", "\\", os.sep)):
        raise OctSrganError(f"--suffix {suffix!r}: must be non-empty text without a path separator")
    wanted = scan_io.format_of_name(out)
    if wanted is None or out.is_dir():
        return None
    if len(inputs) != 1 or not Path(inputs[0]).is_file():
        what = "the input is a folder" if len(inputs) == 1 else f"there are {len(inputs)} inputs"
        raise OctSrganError(f"{out}: -o names one output file, but {what}; give -o a folder instead")
    source = scan_io.scan_format(inputs[0])
    if not scan_io.can_write_as(source, wanted):
        raise OctSrganError(f"{out}: -o is a {wanted} file name but {inputs[0]} is {source}; "
                            f"name the output with the input's extension (a scan keeps its format)")
    return out


def _found_scans(inputs: list[Path], report: EnhanceReport, out_dir: Path | None) -> list[Path]:
    """Every scan file under ``inputs`` once, in order, except those a folder search finds in ``out_dir``.

    An input that cannot be searched is skipped; ``enhance . -o enhanced`` run twice thus never
    enhances its own outputs again.
    """
    found: dict[Path, None] = {}
    for item in inputs:
        try:
            found.update(dict.fromkeys(scan_io.find_scans([item])))
        except ScanError as exc:
            report.skipped.append((Path(item), str(exc)))
    if out_dir is None:
        return list(found)
    outputs, named = out_dir.resolve(), {Path(p) for p in inputs}
    return [p for p in found if p in named or outputs not in p.resolve().parents]


def _refuse_input_folder(inputs: list[Path], out_dir: Path) -> None:
    """Refuse an output folder that is or contains an input folder: its outputs would be inputs next time."""
    hit = overlap_of(out_dir, [p for p in inputs if Path(p).is_dir()])
    if hit is not None and hit[1] != "lies inside":
        raise OctSrganError(f"{out_dir}: -o {hit[1]} the input folder {hit[0]}; choose an output folder apart from it "
                            "(a folder inside it is fine)")


def _output_target(path: Path, out_dir: Path, out_file: Path | None, suffix: str, overwrite: bool,
                   claimed: dict[Path, Path]) -> tuple[Path, str | None]:
    """Where ``path`` is written, and why it is skipped instead (None: it is not)."""
    stem, ext = _split_name(path)
    target = out_file if out_file is not None else out_dir / f"{stem}{suffix}{ext}"
    if target in claimed:
        return target, f"{path}: same output name {target.name} as {claimed[target]}"
    claimed[target] = path
    if target.resolve() == path.resolve():
        return target, f"{path}: the output would replace the input; choose another -o or --suffix"
    if target.exists() and not overwrite:
        return target, f"{path}: output {target} already exists (use --overwrite to replace it)"
    return target, None


def _comparison(path: Path, target: Path, scan: scan_io.Scan, enhanced: scan_io.Scan, model: LoadedModel) -> Path:
    """``<output stem>_compare.png`` of the middle B-scan next to the output."""
    mid = scan.pixels.shape[0] // 2
    compare_path = target.parent / f"{_split_name(target)[0]}_compare.png"
    title = f"{path.name}: B-scan {mid + 1} of {scan.pixels.shape[0]}, x{model.scale} with {model.source}"
    return write_comparison(compare_path, scan.pixels[mid], enhanced.pixels[mid], model.scale, model.axes, title=title)


def _destination(inputs: list[Path], out_dir: Path | None, suffix: str) -> tuple[Path, Path | None]:
    """The output folder (default ``./enhanced``) and the one output file ``out_dir`` may name; an
    output folder is refused when it is or holds an input folder."""
    out_dir = Path(out_dir) if out_dir is not None else Path("enhanced")
    out_file = output_plan([Path(p) for p in inputs], out_dir, suffix)
    if out_file is not None:
        return out_file.parent, out_file
    _refuse_input_folder(inputs, out_dir)
    return out_dir, None


def _plan(inputs: list[Path], out_dir: Path | None, suffix: str, overwrite: bool,
          report: EnhanceReport) -> list[tuple[Path, Path, str | None]]:
    """(input, output, reason it is skipped or None) for every scan found, in a writable output folder."""
    out_dir, out_file = _destination(inputs, out_dir, suffix)
    found = _found_scans(inputs, report, None if out_file is not None else out_dir)
    _check_writable(out_dir)
    remove_dead_temps(out_dir)  # what a killed earlier run was writing
    claimed: dict[Path, Path] = {}
    return [(path, *_output_target(path, out_dir, out_file, suffix, overwrite, claimed)) for path in found]


def _read(path: Path, precision: str, device: str | torch.device, max_pixels: int | None,
          notify: Callable[[str], None] | None) -> tuple[scan_io.Scan, str]:
    """The scan and the precision chosen for it ("auto": by its bit depth), said through ``notify`` with
    its notes (colour read as grey, 1-bit written as 8-bit, EXIF rotation)."""
    scan = scan_io.read_scan(path, max_pixels=max_pixels)
    chosen, why = choose_inference_precision(precision, device, scan.bit_depth)
    if notify is not None:
        notify(f"{path.name}: precision {chosen} ({why})")
        for note in scan.notes:
            notify(f"note: {path}: {note}")
    return scan, chosen


def _derivation(loaded: LoadedModel, fidelity: float) -> str:
    """The output's derivation line: what made it, so a reader of the file can tell."""
    kept = f", fidelity {fidelity:g}" if fidelity else ""
    return f"oct-srgan x{loaded.scale} super-resolution (model {loaded.source}{kept})"


def enhance_files(
    inputs: list[Path],
    out_dir: Path | None = None,
    model: str | Path = "default",
    *,
    tile: int | str | None = "auto",
    overlap: float | int = DEFAULT_OVERLAP,
    batch_size: int = 4,
    device: str | torch.device = "cpu",
    fidelity: float = 0.0,
    precision: str = "fp32",
    overwrite: bool = False,
    compare: bool = False,
    progress: Callable[[Path, int, int], None] | None = None,
    max_pixels: int | None = scan_io.DEFAULT_MAX_PIXELS,
    notify: Callable[[str], None] | None = None,
    suffix: str = "_sr",
    on_start: Callable[[Path, int, str], None] | None = None,
    share: Share = Share(),
) -> EnhanceReport:
    """Enhance every scan found under ``inputs`` into ``out_dir`` (default ``./enhanced``).

    Each output is ``<stem><suffix><ext>`` in the input's format, written atomically by
    ``io.write_scan``; an ``out_dir`` with a scan extension is the output file itself for one input
    file (see :func:`output_plan`). Existing outputs are kept unless ``overwrite``, and an input is
    never written over; unreadable or unsupported files are skipped with their one-line reason.
    ``compare`` also writes ``<output stem>_compare.png`` (bicubic | SR of the middle B-scan).
    ``progress(path, done, total)`` reports tiles or B-scans done within each file and then one step
    per B-scan written (the output and its comparison), and ``on_start(path, total, unit)`` the total
    and whether the computing counts tiles or B-scans before the first step (see :func:`enhance_scan`).
    ``precision`` "auto" picks per file (:func:`oct_srgan.precision.choose_inference_precision`);
    ``notify`` receives what it chose, and one ``note:`` line for a colour scan read as grey.
    ``share`` (a ``torchrun`` rank) enhances only its part of the planned files (see ``distributed``).
    """
    look_up_option(precision, InferencePrecision, "precision")
    report = EnhanceReport()
    plan = _plan(inputs, out_dir, suffix, overwrite, report)
    report.model = loaded = load_model(model, device)
    inferer = SRInferer(loaded, tile=tile, overlap=overlap, batch_size=batch_size, device=device,
                        precision="fp32" if precision == "auto" else precision, fidelity=fidelity)
    derivation = _derivation(loaded, fidelity)
    for path, target, reason in share.take(plan):
        if reason is not None:
            report.skipped.append((path, reason))
            continue
        try:
            scan, chosen = _read(path, precision, device, max_pixels, notify)
            steps = _FileProgress(path, scan.pixels.shape[0], progress, on_start)
            enhanced = enhance_scan(scan, inferer.with_precision(chosen), progress=steps.computed, on_start=steps.start)
            scan_io.write_scan(enhanced, target, derivation=derivation, overwrite=overwrite)
        except WriteError:
            raise
        except ScanError as exc:
            report.skipped.append((path, str(exc)))
            continue
        report.written.append((path, target))
        if compare:
            report.comparisons.append(_comparison(path, target, scan, enhanced, loaded))
        steps.written()
    return report
