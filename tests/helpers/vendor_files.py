"""Scanner exports built in their published layouts with the readers' own ``construct`` structs
(eyepy's ``vol_format``, oct-converter's Bioptigen field structs), from B-scans ``[N, H, W]``."""

from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np

# Made-up identifiers, to check that they reach the derived DICOM and nothing else.
PATIENT_ID = "VENDOR-FIXTURE-7"
BIRTH = datetime.datetime(1951, 2, 3)


def write_heidelberg_vol(path: Path, bscans: np.ndarray, spacing: tuple[float, float, float]) -> Path:
    """A Spectralis ``.vol`` of uint8 ``bscans`` ``[N, H, W]`` (stored as eyepy's inverse vol transform);
    ``spacing`` is (axial, lateral, between B-scans) in mm."""
    import construct as cs
    from eyepy.core.utils import to_vol_intensity
    from eyepy.io.he.vol_reader import vol_format

    # eyepy's exam-time encoder yields a float the 64-bit field refuses: build that field as its raw
    # 100 ns ticks since 1601 and every other field with eyepy's own struct.
    layout = cs.Struct(*(("exam_time" / cs.Int64ul) if sc.name == "exam_time" else sc for sc in vol_format.subcons))
    n, h, w = bscans.shape
    when = datetime.datetime(2020, 5, 6)
    bscan_items = [
        dict(bscan_hdr_size=256, start_x=0.0, start_y=i * spacing[2], end_x=w * spacing[1], end_y=i * spacing[2],
             num_seg=0, quality=30.0, shift=0, iv_transformation=[0.0] * 6,
             layer_segmentations=np.zeros((0, w), np.float32), data=to_vol_intensity(b).astype(np.float32))
        for i, b in enumerate(bscans)
    ]
    ticks = (when - datetime.datetime(1601, 1, 1)) // datetime.timedelta(microseconds=1) * 10
    data = layout.build(dict(
        version="HSF-OCT-103", size_x=w, n_bscans=n, size_y=h, scale_x=spacing[1], distance=spacing[2],
        scale_y=spacing[0], size_x_slo=8, size_y_slo=8, scale_x_slo=0.01, scale_y_slo=0.01,
        field_size_slo=30, scan_focus=0.0, scan_position="OD", exam_time=ticks, scan_pattern=3,
        bscan_hdr_size=256, id="1", reference_id="", pid=1, patient_id=PATIENT_ID, dob=BIRTH.isoformat(), vid=1,
        visit_id="", visit_date=when.isoformat(), grid_type=0, grid_offset=0, grid_type1=0, grid_offset1=0, prog_id="",
        localizer=np.zeros((8, 8), np.uint8), bscans=bscan_items))
    path.write_bytes(data)
    return path


def _field(struct, key: str, **values) -> bytes:
    """One Bioptigen header field (key length, key, data length, value) built by oct-converter's struct."""
    return struct.build(dict(keylength=len(key), key=key, **values))


def write_bioptigen_oct(path: Path, bscans: np.ndarray, depth_mm: float, length_mm: float,
                        elevation_mm: float) -> Path:
    """A Bioptigen ``.oct`` rectangular volume of uint16 ``bscans`` ``[N, H, W]``: header fields, then
    one frame per B-scan (frame header fields, A-scans of H samples one after another)."""
    from oct_converter.readers.binary_structs import boct_binary as b

    n, h, w = bscans.shape
    ints = dict(framecount=n, linecount=w, linelength=h, sampleformat=2, scantype=1, scans=n, frames=1,
                dopplerflag=0)
    floats = dict(xmin=0.0, xmax=length_mm, ymin=0.0, ymax=elevation_mm, scandepth=depth_mm,
                  scanlength=length_mm, azscanlength=length_mm, elscanlength=elevation_mm,
                  objectdistance=0.0, scanangle=0.0)
    out = bytearray(b"\xff\xff\x00\x00\x01\x00")  # magic number, version
    out += _field(b.headerField, "FRAMEHEADER", dataLength=0)
    for key in ("framecount", "linecount", "linelength", "sampleformat"):
        out += _field(b.intField, key.upper(), dataLength=4, value=ints[key])
    out += _field(b.strField, "DESCRIPTION", dataLength=4, value="test")
    for key in ("xmin", "xmax"):
        out += _field(b.floatField, key.upper(), dataLength=8, value=floats[key])
    out += _field(b.strField, "XCAPTION", dataLength=2, value="mm")
    for key in ("ymin", "ymax"):
        out += _field(b.floatField, key.upper(), dataLength=8, value=floats[key])
    out += _field(b.strField, "YCAPTION", dataLength=2, value="mm")
    out += _field(b.intField, "SCANTYPE", dataLength=4, value=ints["scantype"])
    for key in ("scandepth", "scanlength", "azscanlength", "elscanlength", "objectdistance", "scanangle"):
        out += _field(b.floatField, key.upper(), dataLength=8, value=floats[key])
    for key in ("scans", "frames", "dopplerflag"):
        out += _field(b.intField, key.upper(), dataLength=4, value=ints[key])
    out += _field(b.intField, "CONFIG", dataLength=4, value=0) + bytes(4)
    stamp = dict(year=2013, month=1, dow=2, day=1, hour=12, minute=0, second=0, millisecond=0)
    for bscan in bscans:
        out += _field(b.headerField, "FRAMEDATA", dataLength=0)
        out += _field(b.dateField, "FRAMEDATETIME", dataLength=16, value=stamp)
        out += _field(b.floatField, "FRAMETIMESTAMP", dataLength=8, value=0.0)
        out += _field(b.intField, "FRAMELINES", dataLength=4, value=w)
        pixels = np.ascontiguousarray(bscan.T, dtype="<u2").tobytes()
        out += _field(b.headerField, "FRAMESAMPLES", dataLength=len(pixels)) + pixels + bytes(4)
    path.write_bytes(bytes(out))
    return path


def _topcon_chunk(name: str, data: bytes) -> bytes:
    return bytes([len(name)]) + name.encode("ascii") + len(data).to_bytes(4, "little") + data


def write_topcon_fds(path: Path, bscans: np.ndarray, x_mm: float, y_mm: float, z_um: float) -> Path:
    """A Topcon ``.fds`` of uint16 ``bscans`` ``[N, H, W]``: file header, then the B-scan, scan
    parameter, capture and patient chunks, each built by oct-converter's ``fds_binary`` structs."""
    from oct_converter.readers.binary_structs import fds_binary as b

    n, h, w = bscans.shape
    pixels = np.ascontiguousarray(bscans, dtype="<u2").tobytes()
    image = b.oct_header.build(dict(scan_mode=2, width=w, height=h, bits_per_pixel=16, number_slices=n,
                                    format=0, size=len(pixels))) + pixels
    params = b.param_scan_04_header.build(dict(fixation=0, mirror_pos=0, polar=0, x_dimension_mm=x_mm,
                                               y_dimension_mm=y_mm, z_resolution_um=z_um, comp_eff_2=0.0,
                                               comp_eff_3=0.0, base_pos=0, used_calib_data=0))
    capture = b.capture_info_02_header.build(dict(eye=1, scan_mode=2, session_id=1, label="",
                                                  cap_date=[2019, 7, 8, 9, 10, 11]))
    zeros = {"occup_reg": [[0] * 20] * 2, "r_date": [0] * 3, "record_id": [0] * 16, "lv_date": [0] * 3,
             "physician": [[0] * 64] * 2, "zip_code": [0] * 12, "addr": [[0] * 48] * 2, "phones": [[0] * 16] * 2,
             "nx_date": [0] * 6, "multipurpose_field": [[0] * 20] * 3, "descp": [0] * 64, "reserved": [0] * 32}
    patient = b.patient_info_02_header.build(dict(patient_id=PATIENT_ID, first_name="Jane", last_name="Fixture",
                                                  mid_name="", sex=2, birth_date=[BIRTH.year, BIRTH.month, BIRTH.day],
                                                  **zeros))
    out = b.header.build(dict(file_code="FOCT", file_type="FDA", major_ver=2, minor_ver=1000))
    for name, data in (("@IMG_SCAN_03", image), ("@PARAM_SCAN_04", params), ("@CAPTURE_INFO_02", capture),
                       ("@PATIENT_INFO_02", patient)):
        out += _topcon_chunk(name, data)
    path.write_bytes(out + b"\0")
    return path
