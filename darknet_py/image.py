"""Images as darknet handles them: load_image_color, resize_image, letterbox_image,
save_image and draw_detections (darknet's src/image.c).

An image is a float32 array of shape (c, h, w) with values in [0, 1], like darknet's
`image` struct (planar, channel-major).

Loading: darknet decodes with stb_image. libjpeg (what Pillow uses) rounds its IDCT,
chroma upsampling and colour conversion differently, so 5-15 % of a JPEG's bytes come out
1-3 levels off and the letterboxed network input is off by up to 2.9/255. Baseline JPEGs
are therefore decoded here with stb_image's own integer arithmetic (`_decode_jpeg`), which
reproduces darknet's network input bit for bit. Everything else (PNG, BMP, GIF, progressive
or CMYK JPEGs, ...) goes through Pillow, converted the way stb_image's 3-channel load does.
"""
from __future__ import annotations

import functools
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from darknet_py.errors import ImageError

f32 = np.float32


# --------------------------------------------------------------------------- loading

def load_image(path, channels: int = 3, exact: bool = True) -> np.ndarray:
    """darknet's load_image_color: (3, h, w) float32 = byte/255, RGB, alpha dropped.

    exact=False decodes JPEGs with Pillow (libjpeg: ~50x faster, 1-3 levels off stb_image
    on 7-15% of bytes); training uses it, since augmentation changes every pixel anyway."""
    if channels != 3:
        raise ImageError(f"{path}: only 3-channel loading is supported (asked for {channels})")
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageError(f"cannot load image {path}: no such file") from None
    except OSError as exc:
        raise ImageError(f"cannot load image {path}: {exc.strerror or exc}") from None
    if not data:
        raise ImageError(f"cannot load image {path}: the file is empty")
    try:
        pixels = _decode_jpeg(data) if exact and data[:2] == b"\xff\xd8" else None
    except ImageError as exc:
        raise ImageError(f"cannot load image {path}: {exc}") from None
    if pixels is None:
        pixels = _decode_with_pillow(data, path)
    # darknet: (float)byte/255. is a double division rounded to float.
    return (pixels.astype(np.float64) / 255.0).astype(f32).transpose(2, 0, 1).copy()


def _decode_with_pillow(data: bytes, path: Path) -> np.ndarray:
    """Any format Pillow reads, as (h, w, 3) uint8 the way stb_image returns 3 channels."""
    try:
        with Image.open(io.BytesIO(data)) as pil:
            pil.load()
            if pil.width == 0 or pil.height == 0:
                raise ImageError(f"cannot load image {path}: it has zero size")
            if pil.mode in ("I;16", "I;16L", "I;16B", "I"):
                # 16-bit greyscale: stb_image keeps the high byte.
                grey = (np.asarray(pil).astype(np.int64) >> 8).clip(0, 255).astype(np.uint8)
                return np.repeat(grey[:, :, None], 3, axis=2)
            # L/1/P/LA/RGBA/CMYK -> RGB: grey replicated, palette expanded, alpha dropped
            # without blending, which is what stb_image does for 3 requested channels.
            return np.asarray(pil.convert("RGB"))
    except ImageError:
        raise
    except Image.UnidentifiedImageError:
        raise ImageError(f"cannot load image {path}: not a recognised image format") from None
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, ... for bad data
        truncated = "truncated" in str(exc)
        reason = "the file is truncated" if truncated else f"corrupt image data ({exc})"
        raise ImageError(f"cannot load image {path}: {reason}") from None


# ------------------------------------------------------ stb_image's baseline JPEG decoder
# Only what stb_image does for a baseline (SOF0/SOF1), Huffman-coded, 8-bit JPEG with 1 or 3
# components; anything else returns None and is decoded by Pillow.

_DEZIGZAG = [0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48,
             41, 34, 27, 20, 13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22,
             15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55,
             62, 63] + [63] * 15  # stb pads with 63 so that corrupt runs past 63 stay in bounds
_END_OF_BLOCK = 80  # a zig-zag step that lands in the spare 65th slot of a block
_DEZIGZAG += [64] * (_END_OF_BLOCK + 64 - len(_DEZIGZAG))


def _c_fixed(x: float, scale: float) -> int:
    """stb's float-to-fixed macros: (int)(x_float * scale + 0.5), truncating toward zero."""
    return int(float(f32(x) * f32(scale)) + 0.5)


def _decode_jpeg(data: bytes):
    """(h, w, 3) uint8 exactly as stb_image's stbi_load(..., 3), or None if not baseline."""
    pos, frame, scans_done = 2, None, 0
    qtables, dc_tables, ac_tables = {}, {}, {}
    restart_interval, jfif, adobe_transform = 0, False, -1
    while True:
        marker, pos = _next_marker(data, pos)
        if marker is None or marker == 0xD9:  # end of file or EOI
            break
        if pos + 2 > len(data):
            raise ImageError("the file is truncated")
        length = int.from_bytes(data[pos:pos + 2], "big")
        segment = data[pos + 2:pos + length]
        if len(segment) != length - 2 or length < 2:
            raise ImageError("the file is truncated")
        pos += length
        if marker in (0xC0, 0xC1):
            frame = _parse_frame(segment)
            if frame is None:
                return None
        elif marker in (0xC2, 0xC3) or (0xC5 <= marker <= 0xCF and marker not in (0xC8, 0xCC)):
            return None  # progressive, lossless, arithmetic: leave it to Pillow
        elif marker == 0xDB:
            _parse_dqt(segment, qtables)
        elif marker == 0xC4:
            _parse_dht(segment, dc_tables, ac_tables)
        elif marker == 0xDD:
            restart_interval = int.from_bytes(segment[:2], "big")
        elif marker == 0xE0 and segment[:5] == b"JFIF\0":
            jfif = True
        elif marker == 0xEE and segment[:6] == b"Adobe\0" and len(segment) >= 12:
            adobe_transform = segment[11]
        elif marker == 0xDA:
            if frame is None:
                raise ImageError("corrupt JPEG: scan before frame header")
            pos = _decode_scan(data, pos, segment, frame, qtables, dc_tables, ac_tables,
                               restart_interval)
            scans_done += 1
    if frame is None or scans_done == 0:
        raise ImageError("the file is truncated (no image data)")
    planes = [_idct_plane(comp) for comp in frame["comps"]]
    width, height = frame["width"], frame["height"]
    upsampled = [_upsample(plane, comp, frame, width, height)
                 for plane, comp in zip(planes, frame["comps"])]
    if len(upsampled) == 1:
        return np.repeat(upsampled[0][:, :, None].astype(np.uint8), 3, axis=2)
    is_rgb = frame["rgb_ids"] or (adobe_transform == 0 and not jfif)
    if is_rgb:
        return np.stack(upsampled, axis=2).astype(np.uint8)
    return _ycbcr_to_rgb(*upsampled)


def _next_marker(data: bytes, pos: int):
    """The marker code at or after pos (skipping fill bytes), and the position after it."""
    while True:
        pos = data.find(b"\xff", pos)
        if pos < 0 or pos + 1 >= len(data):
            return None, len(data)
        code = data[pos + 1]
        if code not in (0x00, 0xFF) and not 0xD0 <= code <= 0xD7:
            return code, pos + 2
        pos += 1


def _parse_frame(seg: bytes):
    if len(seg) < 6:
        raise ImageError("the file is truncated")
    precision, height, width, ncomp = seg[0], int.from_bytes(seg[1:3], "big"), \
        int.from_bytes(seg[3:5], "big"), seg[5]
    if precision != 8 or ncomp not in (1, 3):
        return None  # 12-bit or CMYK: Pillow
    if width == 0 or height == 0:
        raise ImageError("it has zero size")
    if len(seg) != 6 + 3 * ncomp:
        raise ImageError("corrupt JPEG: bad frame header length")
    comps = []
    for i in range(ncomp):
        cid, hv, tq = seg[6 + 3 * i:9 + 3 * i]
        h, v = hv >> 4, hv & 15
        if not (1 <= h <= 4 and 1 <= v <= 4) or tq > 3:
            raise ImageError("corrupt JPEG: bad sampling factors")
        comps.append({"id": cid, "h": h, "v": v, "tq": tq})
    hmax, vmax = max(c["h"] for c in comps), max(c["v"] for c in comps)
    if any(hmax % c["h"] or vmax % c["v"] for c in comps):
        raise ImageError("corrupt JPEG: fractional sampling ratio")
    mcux, mcuy = -(-width // (8 * hmax)), -(-height // (8 * vmax))
    for c in comps:
        c["x"] = (width * c["h"] + hmax - 1) // hmax  # samples that carry image data
        c["y"] = (height * c["v"] + vmax - 1) // vmax
        c["bw"], c["bh"] = mcux * c["h"], mcuy * c["v"]  # block grid of the MCU-padded plane
        c["coef"] = np.zeros((c["bh"] * c["bw"], 64), np.int16)
    rgb_ids = ncomp == 3 and [c["id"] for c in comps] == [ord("R"), ord("G"), ord("B")]
    return {"width": width, "height": height, "comps": comps, "hmax": hmax, "vmax": vmax,
            "mcux": mcux, "mcuy": mcuy, "rgb_ids": rgb_ids}


def _parse_dqt(seg: bytes, qtables: dict):
    pos = 0
    while pos < len(seg):
        sixteen, table = seg[pos] >> 4, seg[pos] & 15
        size = 128 if sixteen else 64
        raw = np.frombuffer(seg[pos + 1:pos + 1 + size], ">u2" if sixteen else np.uint8)
        if table > 3 or raw.size != 64:
            raise ImageError("corrupt JPEG: bad quantisation table")
        natural = np.zeros(64, np.int64)
        natural[_DEZIGZAG[:64]] = raw  # stored in zig-zag order
        qtables[table] = natural
        pos += 1 + size


def _parse_dht(seg: bytes, dc_tables: dict, ac_tables: dict):
    pos = 0
    while pos < len(seg):
        if pos + 17 > len(seg):
            raise ImageError("corrupt JPEG: bad Huffman table")
        kind, table = seg[pos] >> 4, seg[pos] & 15
        counts = list(seg[pos + 1:pos + 17])
        symbols = seg[pos + 17:pos + 17 + sum(counts)]
        if kind > 1 or table > 3 or len(symbols) != sum(counts):
            raise ImageError("corrupt JPEG: bad Huffman table")
        lookup = _huffman_lookup(tuple(counts), bytes(symbols), kind == 1)
        (ac_tables if kind else dc_tables)[table] = lookup
        pos += 17 + len(symbols)


@functools.lru_cache(maxsize=16)  # most files share the standard tables
def _huffman_lookup(counts: tuple, symbols: bytes, is_ac: bool):
    """Lookup lists indexed by the next 16 bits of the stream: (fast, lengths, symbols).

    lengths/symbols: the code that starts there (length 0 = no such code). fast: the code
    and its value bits in one step, (bits used, zig-zag step, value) for AC or (bits used,
    DC difference) for DC; None when they need more than 16 bits. AC end-of-block becomes
    a step past the block's end (into its spare slot) and sixteen-zeros a step of 15 that
    writes a 0, so the decoding loop handles every symbol alike.
    """
    lengths = np.zeros(65536, np.int64)  # 0 = no code starts with these bits
    values = np.zeros(65536, np.int64)
    code, k = 0, 0
    for bits in range(1, 17):  # canonical codes, as the JPEG spec assigns them
        for _ in range(counts[bits - 1]):
            lo, hi = code << (16 - bits), (code + 1) << (16 - bits)
            lengths[lo:hi], values[lo:hi] = bits, symbols[k]
            code, k = code + 1, k + 1
        if code > (1 << bits):
            raise ImageError("corrupt JPEG: bad Huffman code lengths")
        code <<= 1
    size = values & 15 if is_ac else np.minimum(values, 16)  # DC sizes > 15 are errors
    run = values >> 4 if is_ac else np.zeros_like(values)
    used = lengths + size
    windows = np.arange(65536)
    raw = (windows >> np.clip(16 - used, 0, 16)) & ((1 << size) - 1)
    value = np.where(raw < (1 << np.maximum(size - 1, 0)), raw - (1 << size) + 1, raw)
    value[size == 0] = 0
    fast_ok = (lengths > 0) & (used <= 16)
    if is_ac:
        step = np.where(size > 0, run, np.where(values == 0xF0, 15, _END_OF_BLOCK))
        fast = [(u, r, v) if ok else None
                for ok, u, r, v in zip(fast_ok.tolist(), used.tolist(), step.tolist(),
                                       value.tolist())]
    else:
        fast_ok &= size <= 15  # stb rejects DC sizes above 15
        fast = [(u, v) if ok else None
                for ok, u, v in zip(fast_ok.tolist(), used.tolist(), value.tolist())]
    return fast, lengths.tolist(), values.tolist()


def _decode_scan(data, pos, header, frame, qtables, dc_tables, ac_tables, restart_interval):
    """Entropy-decode one scan into the components' coefficients; returns where it ends."""
    nscan = header[0] if header else 0
    if nscan < 1 or len(header) < 1 + 2 * nscan + 3:
        raise ImageError("corrupt JPEG: bad scan header")
    by_id = {c["id"]: c for c in frame["comps"]}
    scan = []
    for i in range(nscan):
        cid, tables = header[1 + 2 * i], header[2 + 2 * i]
        comp = by_id.get(cid)
        if comp is None or (tables >> 4) not in dc_tables or (tables & 15) not in ac_tables \
                or comp["tq"] not in qtables:
            raise ImageError("corrupt JPEG: scan refers to a missing component or table")
        scan.append((comp, dc_tables[tables >> 4], ac_tables[tables & 15]))

    # Decode order of the blocks: (slot in scan, block index in the component's grid).
    if nscan == 1:  # non-interleaved: the component's own blocks in raster order
        comp = scan[0][0]
        rows, cols = np.mgrid[0:-(-comp["y"] // 8), 0:-(-comp["x"] // 8)]
        order = [(0, comp, (rows * comp["bw"] + cols).ravel())]
        blocks_per_unit = 1
    else:  # interleaved MCUs: each component's h x v blocks in turn
        mcu_y, mcu_x = np.mgrid[0:frame["mcuy"], 0:frame["mcux"]]
        mcu_y, mcu_x = mcu_y.ravel(), mcu_x.ravel()
        order, blocks_per_unit = [], 0
        for slot, (comp, _, _) in enumerate(scan):
            for by in range(comp["v"]):
                for bx in range(comp["h"]):
                    index = (mcu_y * comp["v"] + by) * comp["bw"] + mcu_x * comp["h"] + bx
                    order.append((slot, comp, index))
                    blocks_per_unit += 1
    n_units = order[0][2].size
    slots = np.array([slot for slot, _, _ in order])
    block_slot = np.tile(slots, n_units)  # per decoded block: which scan slot
    block_index = np.stack([idx for _, _, idx in order], axis=1).ravel()

    end = _entropy_end(data, pos)
    segments = _split_restarts(data[pos:end]) if restart_interval else [data[pos:end]]
    units_per_segment = restart_interval or n_units
    coefs = [[0] * (comp["bh"] * comp["bw"] * 65) for comp, _, _ in scan]
    first = 0
    for segment in segments:
        if first >= n_units:
            break
        count = min(units_per_segment, n_units - first) * blocks_per_unit
        lo = first * blocks_per_unit
        _decode_blocks(segment, scan, block_slot[lo:lo + count], block_index[lo:lo + count],
                       coefs)
        first += units_per_segment
    if first < n_units:
        raise ImageError("the file is truncated (image data ends early)")
    for slot, (comp, _, _) in enumerate(scan):
        decoded = block_index[block_slot == slot]
        coef = np.array(coefs[slot], np.int64).reshape(-1, 65)[decoded, :64]
        # stb stores coefficient * quantiser in a short: keep its 16-bit wrap-around.
        comp["coef"][decoded] = (coef * qtables[comp["tq"]]).astype(np.int16)
    return end


def _entropy_end(data: bytes, pos: int) -> int:
    """Index of the first marker after entropy-coded data (restart markers are data)."""
    while True:
        pos = data.find(b"\xff", pos)
        if pos < 0 or pos + 1 >= len(data):
            return len(data)
        code = data[pos + 1]
        if code not in (0x00, 0xFF) and not 0xD0 <= code <= 0xD7:
            return pos
        pos += 1 if code == 0xFF else 2


def _split_restarts(stream: bytes) -> list:
    pieces, start, pos = [], 0, 0
    while True:
        pos = stream.find(b"\xff", pos)
        if pos < 0 or pos + 1 >= len(stream):
            break
        if 0xD0 <= stream[pos + 1] <= 0xD7:
            pieces.append(stream[start:pos])
            start = pos + 2
        pos += 2 if stream[pos + 1] != 0xFF else 1
    pieces.append(stream[start:])
    return pieces


_CHUNK_BYTES = 1 << 16  # bit windows are built this many bytes at a time (memory)
_MARGIN_BYTES = 512  # more than one block can read (64 codes + values of 16 bits each)


def _unstuff(stream: bytes) -> np.ndarray:
    """Entropy-coded bytes with the 0x00 after each data 0xFF and trailing fill removed."""
    stream = stream.rstrip(b"\xff")  # fill bytes before the next marker (data FFs end in 00)
    raw = np.frombuffer(stream, np.uint8)
    stuffed = np.flatnonzero((raw[:-1] == 0xFF) & (raw[1:] == 0x00)) + 1
    return np.delete(raw, stuffed).astype(np.int64)


def _bit_windows(raw: np.ndarray, start: int) -> list:
    """For every bit position from byte `start` on, the next 16 bits as an int.

    Covers _CHUNK_BYTES plus a margin; past the end of the data the bits read as zeros, as
    stb_image's bit buffer does once it meets a marker.
    """
    piece = raw[start:start + _CHUNK_BYTES + _MARGIN_BYTES]
    padded = np.concatenate([piece, np.zeros(_MARGIN_BYTES + 3, np.int64)])
    n = padded.size - 3
    word = (padded[:n] << 16) | (padded[1:n + 1] << 8) | padded[2:n + 2]  # 24 bits per byte
    windows = (np.repeat(word, 8) >> (8 - np.tile(np.arange(8), n))) & 0xFFFF
    return windows.tolist()


def _decode_blocks(stream, scan, block_slot, block_index, coefs):
    """The per-symbol Huffman loop (inherently sequential; everything else is vectorised).

    coefs[slot] is a flat list with 65 entries per block: 64 coefficients in natural order
    (not yet dequantised) and a spare slot that end-of-block symbols write into.
    """
    raw = _unstuff(stream)
    nbits = raw.size * 8
    start, bit = 0, 0  # windows[bit] holds the bits from byte `start` * 8 + bit on
    windows = _bit_windows(raw, start)
    dezigzag = _DEZIGZAG
    pred = [0] * len(scan)
    for slot, index in zip(block_slot.tolist(), block_index.tolist()):
        if bit >= _CHUNK_BYTES * 8:  # move the window table on; the margin covers a block
            start, bit = start + (bit >> 3), bit & 7
            windows = _bit_windows(raw, start)
        _, (dc_fast, dc_len, dc_sym), (ac_fast, ac_len, ac_sym) = scan[slot]
        coef = coefs[slot]
        base = index * 65
        entry = dc_fast[windows[bit]]
        if entry is not None:
            used, diff = entry
            bit += used
        else:  # code and value bits together exceed 16: read them separately
            w = windows[bit]
            size = dc_sym[w]
            if dc_len[w] == 0 or size > 15:
                raise ImageError("corrupt JPEG: bad Huffman code")
            bit += dc_len[w]
            diff = windows[bit] >> (16 - size)
            bit += size
            if diff < (1 << (size - 1)):  # JPEG 'extend': negative values
                diff -= (1 << size) - 1
        pred[slot] += diff
        coef[base] = pred[slot]
        k = 1
        while k < 64:
            entry = ac_fast[windows[bit]]
            if entry is not None:
                used, step, value = entry
                bit += used
            else:
                w = windows[bit]
                if ac_len[w] == 0:
                    raise ImageError("corrupt JPEG: bad Huffman code")
                size = ac_sym[w] & 15
                step = ac_sym[w] >> 4
                bit += ac_len[w]
                value = windows[bit] >> (16 - size)
                bit += size
                if value < (1 << (size - 1)):
                    value -= (1 << size) - 1
            k += step
            coef[base + dezigzag[k]] = value
            k += 1
        if start * 8 + bit > nbits:
            raise ImageError("the file is truncated (image data ends early)")


_IDCT = {name: _c_fixed(value, 4096) for name, value in [
    ("c0541", 0.5411961), ("m1847", -1.847759065), ("c0765", 0.765366865),
    ("c1175", 1.175875602), ("c0298", 0.298631336), ("c2053", 2.053119869),
    ("c3072", 3.072711026), ("c1501", 1.501321110), ("m0899", -0.899976223),
    ("m2562", -2.562915447), ("m1961", -1.961570560), ("m0390", -0.390180644)]}


def _idct_1d(s):
    """stb's STBI__IDCT_1D (jidctint's ISLOW with 12-bit constants) on the last axis."""
    k = _IDCT
    p1 = (s[..., 2] + s[..., 6]) * k["c0541"]
    t2 = p1 + s[..., 6] * k["m1847"]
    t3 = p1 + s[..., 2] * k["c0765"]
    t0 = (s[..., 0] + s[..., 4]) * 4096
    t1 = (s[..., 0] - s[..., 4]) * 4096
    x0, x3, x1, x2 = t0 + t3, t0 - t3, t1 + t2, t1 - t2
    t0, t1, t2, t3 = s[..., 7], s[..., 5], s[..., 3], s[..., 1]
    p3, p4, p1, p2 = t0 + t2, t1 + t3, t0 + t3, t1 + t2
    p5 = (p3 + p4) * k["c1175"]
    t0, t1, t2, t3 = t0 * k["c0298"], t1 * k["c2053"], t2 * k["c3072"], t3 * k["c1501"]
    p1 = p5 + p1 * k["m0899"]
    p2 = p5 + p2 * k["m2562"]
    p3, p4 = p3 * k["m1961"], p4 * k["m0390"]
    t3, t2, t1, t0 = t3 + p1 + p4, t2 + p2 + p3, t1 + p2 + p4, t0 + p1 + p3
    return x0, x1, x2, x3, t0, t1, t2, t3


def _idct_butterfly(x0, x1, x2, x3, t0, t1, t2, t3, shift):
    return np.stack([x0 + t3, x1 + t2, x2 + t1, x3 + t0,
                     x3 - t0, x2 - t1, x1 - t2, x0 - t3], axis=-1) >> shift


def _idct_plane(comp) -> np.ndarray:
    """All blocks of a component through stb's integer IDCT, as one (rows, cols) plane."""
    blocks = comp["coef"].astype(np.int32).reshape(-1, 8, 8)  # C int arithmetic
    # Columns first, keeping 2 extra bits (the +512 rounds the >> 10).
    x0, x1, x2, x3, t0, t1, t2, t3 = _idct_1d(blocks.transpose(0, 2, 1))
    cols = _idct_butterfly(x0 + 512, x1 + 512, x2 + 512, x3 + 512, t0, t1, t2, t3, 10)
    # cols[b, column, row] -> rows; the +65536 rounds, (128 << 17) is the level shift.
    bias = 65536 + (128 << 17)
    x0, x1, x2, x3, t0, t1, t2, t3 = _idct_1d(cols.transpose(0, 2, 1))
    pixels = np.clip(_idct_butterfly(x0 + bias, x1 + bias, x2 + bias, x3 + bias,
                                     t0, t1, t2, t3, 17), 0, 255)
    bh, bw = comp["bh"], comp["bw"]
    return pixels.reshape(bh, bw, 8, 8).transpose(0, 2, 1, 3).reshape(bh * 8, bw * 8)


def _upsample(plane, comp, frame, width, height) -> np.ndarray:
    """stb's chroma upsampling to (height, width), including its edge handling."""
    hs, vs = frame["hmax"] // comp["h"], frame["vmax"] // comp["v"]
    lores_w = -(-width // hs)
    last_row = comp["y"] - 1  # stb stops advancing its line pointer at the last real row
    rows = np.arange(height)
    near = np.minimum(rows // vs, last_row)
    near_rows = plane[near, :lores_w].astype(np.int64)
    if hs == 1 and vs == 1:
        return near_rows[:, :width]
    if vs == 2 and hs in (1, 2):
        # Triangle filter: even rows lean on the row above, odd rows on the row below.
        far = np.clip(np.where(rows % 2, near + 1, near - 1), 0, last_row)
        far_rows = plane[far, :lores_w].astype(np.int64)
        if hs == 1:
            return (3 * near_rows + far_rows + 2) >> 2
        return _upsample_hv2(3 * near_rows + far_rows)[:, :width]
    if hs == 2 and vs == 1:
        return _upsample_h2(near_rows)[:, :width]
    return np.repeat(near_rows, hs, axis=1)[:, :width]  # other ratios: nearest neighbour


def _upsample_h2(x):
    n = x.shape[1]
    if n == 1:
        return np.repeat(x, 2, axis=1)
    out = np.empty((x.shape[0], 2 * n), np.int64)
    out[:, 0] = x[:, 0]
    out[:, 1] = (3 * x[:, 0] + x[:, 1] + 2) >> 2
    out[:, 2:2 * n - 2:2] = (3 * x[:, 1:-1] + x[:, :-2] + 2) >> 2
    out[:, 3:2 * n - 2:2] = (3 * x[:, 1:-1] + x[:, 2:] + 2) >> 2
    # stb weights the second-to-last sample by 3 here (its quirk, kept on purpose).
    out[:, 2 * n - 2] = (3 * x[:, n - 2] + x[:, n - 1] + 2) >> 2
    out[:, 2 * n - 1] = x[:, n - 1]
    return out


def _upsample_hv2(t):
    """Horizontal half of stb's 2x2 triangle filter on t = 3*near + far."""
    n = t.shape[1]
    if n == 1:
        return np.repeat((t + 2) >> 2, 2, axis=1)
    out = np.empty((t.shape[0], 2 * n), np.int64)
    out[:, 0] = (t[:, 0] + 2) >> 2
    out[:, 1:2 * n - 1:2] = (3 * t[:, :-1] + t[:, 1:] + 8) >> 4
    out[:, 2:2 * n - 1:2] = (3 * t[:, 1:] + t[:, :-1] + 8) >> 4
    out[:, 2 * n - 1] = (t[:, n - 1] + 2) >> 2
    return out


_YCC = {name: _c_fixed(value, 4096.0) << 8 for name, value in
        [("cr_r", 1.40200), ("cr_g", 0.71414), ("cb_g", 0.34414), ("cb_b", 1.77200)]}


def _ycbcr_to_rgb(y, cb, cr) -> np.ndarray:
    """stb's stbi__YCbCr_to_RGB_row: 20-bit fixed point, Cb's green term truncated to 16."""
    y_fixed = (y << 20) + (1 << 19)
    cr, cb = cr - 128, cb - 128
    r = y_fixed + cr * _YCC["cr_r"]
    g = y_fixed - cr * _YCC["cr_g"] + ((cb * -_YCC["cb_g"]) & ~0xFFFF)
    b = y_fixed + cb * _YCC["cb_b"]
    return np.clip(np.stack([r, g, b], axis=2) >> 20, 0, 255).astype(np.uint8)


# ------------------------------------------------------------------- resize / letterbox

def resize_image(im: np.ndarray, w: int, h: int) -> np.ndarray:
    """darknet's resize_image: bilinear, horizontal pass then vertical, float32 throughout.

    Scale is (im_w-1)/(w-1), so the corners map onto the corners. The last output column
    copies the last input column; the last output row gets only its (1-dy) term (darknet
    skips the second term there, which matters when the float scale rounds below an integer).
    """
    c, im_h, im_w = im.shape
    im = np.asarray(im, f32)
    part = np.empty((c, im_h, w), f32)
    if w > 1:
        w_scale = f32(im_w - 1) / f32(w - 1)
        sx = np.arange(w - 1, dtype=f32) * w_scale
        ix = sx.astype(np.int64)
        dx = sx - ix.astype(f32)
        if im_w == 1:
            part[:, :, :-1] = im[:, :, :1]
        else:
            part[:, :, :-1] = (f32(1) - dx) * im[:, :, ix] + dx * im[:, :, ix + 1]
    if w > 0:
        part[:, :, -1] = im[:, :, -1]
    # h == 1 divides by zero in darknet (undefined); use the top row, as for h_scale = 0.
    h_scale = f32(im_h - 1) / f32(h - 1) if h > 1 else f32(0)
    sy = np.arange(h, dtype=f32) * h_scale
    iy = sy.astype(np.int64)
    dy = (sy - iy.astype(f32))[:, None]
    resized = (f32(1) - dy) * part[:, iy, :]
    if im_h > 1 and h > 1:
        resized[:, :-1] += dy[:-1] * part[:, iy[:-1] + 1, :]
    return resized


def letterbox_size(im_w: int, im_h: int, net_w: int, net_h: int):
    """(new_w, new_h) of the image inside the letterbox, as darknet's letterbox_image.

    The comparison is in float ((float)w/im.w < (float)h/im.h), the sizes in integers.
    """
    if f32(net_w) / f32(im_w) < f32(net_h) / f32(im_h):
        return net_w, (im_h * net_w) // im_w
    return (im_w * net_h) // im_h, net_h


def letterbox_image(im: np.ndarray, w: int, h: int) -> np.ndarray:
    """darknet's letterbox_image: aspect-preserving resize, centred on a 0.5 canvas."""
    c, im_h, im_w = im.shape
    new_w, new_h = letterbox_size(im_w, im_h, w, h)
    resized = resize_image(im, new_w, new_h)
    boxed = np.full((c, h, w), 0.5, f32)
    dx, dy = (w - new_w) // 2, (h - new_h) // 2
    boxed[:, dy:dy + new_h, dx:dx + new_w] = resized
    return boxed


# ------------------------------------------------------------------------ save / draw

def save_image(im: np.ndarray, path) -> None:
    """Write a CHW float image as .jpg/.jpeg (quality 80, darknet's default) or .png."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".jpg", ".jpeg", ".png"):
        raise ImageError(f"cannot save image {path}: use a .jpg, .jpeg or .png name")
    # darknet writes (unsigned char)(255*v); clipping first keeps out-of-range values sane.
    pixels = (np.clip(np.asarray(im, f32), 0, 1) * f32(255)).astype(np.uint8)
    pixels = pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0)
    try:
        if suffix == ".png":
            Image.fromarray(pixels).save(path, format="PNG")
        else:
            Image.fromarray(pixels).save(path, format="JPEG", quality=80)
    except OSError as exc:
        raise ImageError(f"cannot save image {path}: {exc.strerror or exc}") from None


_COLORS = [[1, 0, 1], [0, 0, 1], [0, 1, 1], [0, 1, 0], [1, 1, 0], [1, 0, 0]]


def get_color(c: int, x: int, max_value: int) -> float:
    """darknet's get_color: channel c of a colour ramp through _COLORS, in float32."""
    ratio = (f32(x) / f32(max_value)) * f32(5)
    i, j = int(np.floor(ratio)), int(np.ceil(ratio))
    ratio = ratio - f32(i)
    return float((f32(1) - ratio) * f32(_COLORS[i][c]) + ratio * f32(_COLORS[j][c]))


def _draw_box(im, x1, y1, x2, y2, rgb):
    """darknet's draw_box: a one-pixel rectangle, corners clamped into the image."""
    _, h, w = im.shape
    x1, x2 = min(max(x1, 0), w - 1), min(max(x2, 0), w - 1)
    y1, y2 = min(max(y1, 0), h - 1), min(max(y2, 0), h - 1)
    colour = np.asarray(rgb, f32)[:, None]
    im[:, y1, x1:x2 + 1] = colour
    im[:, y2, x1:x2 + 1] = colour
    im[:, y1:y2 + 1, x1] = colour
    im[:, y1:y2 + 1, x2] = colour


def _draw_label(im, row, col, text, rgb):
    """Black text on a box of the class colour, above the box when it fits (draw_label).

    darknet renders its own bitmap alphabet (data/labels/) at a size from im.h * .03; here
    Pillow's default font at about that size stands in for it.
    """
    try:
        font = ImageFont.load_default(size=max(10, int(im.shape[1] * .03)))
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        font = ImageFont.load_default()
    left, top, right, bottom = font.getbbox(text)
    border = max(1, (bottom - top) // 4)  # darknet's label has a border of a quarter height
    label = Image.new("L", (right - left + 2 * border, bottom - top + 2 * border), 255)
    ImageDraw.Draw(label).text((border - left, border - top), text, fill=0, font=font)
    label = np.asarray(label, f32) / f32(255)
    lh, lw = label.shape
    _, h, w = im.shape
    if row - lh >= 0:
        row -= lh
    rows, cols = min(lh, h - row), min(lw, w - col)
    if rows > 0 and cols > 0:
        im[:, row:row + rows, col:col + cols] = \
            np.asarray(rgb, f32)[:, None, None] * label[None, :rows, :cols]


def draw_detections(im, detections, thresh, names, path=None) -> np.ndarray:
    """darknet's draw_detections on a copy of im; saved to path when given.

    Each detection with some class prob > thresh gets a box in the colour of its first such
    class and a label listing all of them ("dog, cat").
    """
    im = np.array(im, f32, copy=True)
    _, im_h, im_w = im.shape
    for det in detections:
        prob = np.asarray(det.prob)
        classes = prob.size
        above = np.flatnonzero(prob > thresh).tolist()
        if not above:
            continue
        first = above[0]
        offset = first * 123457 % classes
        rgb = [get_color(2, offset, classes), get_color(1, offset, classes),
               get_color(0, offset, classes)]
        width = int(im_h * .006)  # darknet: int width = im.h * .006 (0 below 167 rows)
        # darknet computes these in double and truncates toward zero.
        x, y, w, h = float(det.x), float(det.y), float(det.w), float(det.h)
        left = max(int((x - w / 2.) * im_w), 0)
        right = min(int((x + w / 2.) * im_w), im_w - 1)
        top = max(int((y - h / 2.) * im_h), 0)
        bot = min(int((y + h / 2.) * im_h), im_h - 1)
        for i in range(width):
            _draw_box(im, left + i, top + i, right - i, bot - i, rgb)
        _draw_label(im, top + width, left, ", ".join(names[j] for j in above), rgb)
    if path is not None:
        save_image(im, path)
    return im
