"""stb_image's JPEG decoder, reproduced bit for bit (stb_image.h's stbi__jpeg_* code).

darknet loads images with stb_image; libjpeg (Pillow) rounds its IDCT, chroma upsampling
and colour conversion differently, so decoding here with stb's own integer arithmetic is
what makes network inputs identical to darknet's.

Supported: baseline and extended-sequential (SOF0/SOF1), Huffman-coded, 8-bit JPEGs with
1 or 3 components, any h/v sampling factors 1-4, restart intervals, JFIF/Adobe/RGB-id
colour handling. `decode_jpeg` returns None for anything else (progressive, lossless,
arithmetic-coded, 12-bit, CMYK), which the caller hands to Pillow.
"""
from __future__ import annotations

import functools

import numpy as np

from darknet_py.errors import ImageError
from darknet_py.settings import import_numba, memory_bytes

f32 = np.float32
_KERNELS = {}  # name -> inline?, for the functions numba compiles (see numba_available)


def _jit(fn=None, *, inline=False):
    """Marks a kernel for numba.njit(cache=True); numba_available() compiles them.

    inline: small helpers are inlined into their callers in numba's IR. Until compiled
    (or without numba) a kernel is plain Python: still correct, only very slow."""
    if fn is None:
        return lambda f: _jit(f, inline=inline)
    _KERNELS[fn.__name__] = inline
    return fn


@functools.lru_cache(maxsize=None)
def numba_available() -> bool:
    """Whether the kernels run compiled. numba is imported on first use, not with this
    module (importing it costs ~0.5 s; the first kernel call another ~0.5-1 s to load the
    cached machine code, or ~8 s to compile it the first time on a machine)."""
    try:
        numba = import_numba()
    except ImportError:
        return False
    for name, inline in _KERNELS.items():  # callers find the compiled helpers as globals
        globals()[name] = numba.njit(cache=True, nogil=True,
                                     inline="always" if inline else "never")(globals()[name])
    return True


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


def decode_jpeg(data: bytes, fast: bool | None = None):
    """(h, w, 3) uint8 exactly as stb_image's stbi_load(..., 3), or None if not baseline.

    fast: the numba-compiled loops (default when numba is installed) or False for the
    NumPy/Python ones; both give the same bytes. The fast result is a (h, w, 3) view of a
    planar (3, h, w) array, so that load_image's transposition to CHW is free."""
    if fast is None:
        fast = numba_available()
    elif fast:
        numba_available()  # compiles the kernels where numba is installed
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
                               restart_interval, fast)
            scans_done += 1
    if frame is None or scans_done == 0:
        raise ImageError("the file is truncated (no image data)")
    is_rgb = len(frame["comps"]) == 3 and (frame["rgb_ids"] or (adobe_transform == 0
                                                                 and not jfif))
    if fast:
        return _pixels_compiled(frame, is_rgb)
    planes = [_idct_plane(comp) for comp in frame["comps"]]
    width, height = frame["width"], frame["height"]
    upsampled = [_upsample(plane, comp, frame, width, height)
                 for plane, comp in zip(planes, frame["comps"])]
    if len(upsampled) == 1:
        return np.repeat(upsampled[0][:, :, None].astype(np.uint8), 3, axis=2)
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
    total = mcux * mcuy * sum(c["h"] * c["v"] for c in comps)
    # coefficients (int16), planes and the float image: refuse before allocating
    if total * 64 * 2 + width * height * ncomp * 8 > memory_bytes():
        raise ImageError(f"its header claims {width}x{height} pixels: more memory than this "
                         "machine has")
    coef, offset = np.zeros((total, 64), np.int16), 0  # all components' blocks, one array
    for c in comps:
        c["x"] = (width * c["h"] + hmax - 1) // hmax  # samples that carry image data
        c["y"] = (height * c["v"] + vmax - 1) // vmax
        c["bw"], c["bh"] = mcux * c["h"], mcuy * c["v"]  # block grid of the MCU-padded plane
        c["offset"] = offset  # first row of this component's blocks in `coef`
        c["coef"] = coef[offset:offset + c["bh"] * c["bw"]]
        offset += c["bh"] * c["bw"]
    rgb_ids = ncomp == 3 and [c["id"] for c in comps] == [ord("R"), ord("G"), ord("B")]
    return {"width": width, "height": height, "comps": comps, "hmax": hmax, "vmax": vmax,
            "mcux": mcux, "mcuy": mcuy, "rgb_ids": rgb_ids, "coef": coef}


def _parse_dqt(seg: bytes, qtables: dict):
    pos = 0
    while pos < len(seg):
        sixteen, table = seg[pos] >> 4, seg[pos] & 15
        size = 128 if sixteen else 64
        # a truncated table (odd bytes for 16-bit entries) is refused before frombuffer
        if table > 3 or pos + 1 + size > len(seg):
            raise ImageError("corrupt JPEG: bad quantisation table")
        raw = np.frombuffer(seg[pos + 1:pos + 1 + size], ">u2" if sixteen else np.uint8)
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
        spec = (tuple(counts), bytes(symbols), kind == 1)
        _huffman_codes(*spec[:2])  # checks the code lengths now, as stb does on reading DHT
        (ac_tables if kind else dc_tables)[table] = spec
        pos += 17 + len(symbols)


@functools.lru_cache(maxsize=32)  # most files share the standard tables
def _huffman_codes(counts: tuple, symbols: bytes):
    """(lengths, symbols) as uint8 arrays indexed by the next 16 bits of the stream: the
    canonical code that starts there (length 0 = no such code), as stbi__build_huffman
    assigns codes."""
    lengths = np.zeros(65536, np.uint8)
    values = np.zeros(65536, np.uint8)
    code, k = 0, 0
    for bits in range(1, 17):  # canonical codes, as the JPEG spec assigns them
        for _ in range(counts[bits - 1]):
            lo, hi = code << (16 - bits), (code + 1) << (16 - bits)
            lengths[lo:hi], values[lo:hi] = bits, symbols[k]
            code, k = code + 1, k + 1
        if code > (1 << bits):
            raise ImageError("corrupt JPEG: bad Huffman code lengths")
        code <<= 1
    lengths.flags.writeable = values.flags.writeable = False  # shared through the cache
    return lengths, values


@functools.lru_cache(maxsize=16)
def _huffman_lookup(counts: tuple, symbols: bytes, is_ac: bool):
    """Lookup lists indexed by the next 16 bits of the stream: (fast, lengths, symbols).

    lengths/symbols: the code that starts there (length 0 = no such code). fast: the code
    and its value bits in one step, (bits used, zig-zag step, value) for AC or (bits used,
    DC difference) for DC; None when they need more than 16 bits. AC end-of-block becomes
    a step past the block's end (into its spare slot) and sixteen-zeros a step of 15 that
    writes a 0, so the decoding loop handles every symbol alike.
    """
    lengths, values = (a.astype(np.int64) for a in _huffman_codes(counts, symbols))
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


def _decode_scan(data, pos, header, frame, qtables, dc_tables, ac_tables, restart_interval,
                 fast=False):
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

    units_per_segment = restart_interval or n_units
    if fast:
        return _decode_scan_compiled(data, pos, restart_interval > 0, units_per_segment,
                                     n_units, blocks_per_unit, scan, block_slot, block_index,
                                     frame, qtables)
    end = _entropy_end(data, pos)
    segments = _split_restarts(data[pos:end]) if restart_interval else [data[pos:end]]
    scan = [(comp, _huffman_lookup(*dc), _huffman_lookup(*ac)) for comp, dc, ac in scan]
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
    return np.delete(raw, stuffed)


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
    raw = _unstuff(stream).astype(np.int64)
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


# ------------------------------------------------------------------ the compiled path
# The same arithmetic as the NumPy code above, as loops for numba: one pass over the bits
# for the whole scan, then per block IDCT, per row upsampling and colour conversion, with
# no int64 temporaries the size of the image. Each kernel has one type signature (the
# callers pass fixed dtypes), so it compiles once and is then loaded from numba's cache.

_DEZIGZAG_ARRAY = np.array(_DEZIGZAG, np.int64)
_BAD_CODE, _TRUNCATED = 1, 2  # kernel return codes -> the NumPy path's error messages
_KERNEL_ERRORS = {_BAD_CODE: "corrupt JPEG: bad Huffman code",
                  _TRUNCATED: "the file is truncated (image data ends early)"}


def _decode_scan_compiled(data, pos, restarts, units_per_segment, n_units, blocks_per_unit,
                          scan, block_slot, block_index, frame, qtables) -> int:
    """_decode_scan's second half for the kernels; returns where the scan's data ends."""
    stream = np.frombuffer(data, np.uint8)[pos:]
    ff = np.flatnonzero(stream[:-1] == 0xFF)
    after = stream[ff + 1]
    # _entropy_end: the first 0xFF not followed by 0x00, 0xFF or a restart marker. (The
    # bytes that _entropy_end steps over are never 0xFF, so every 0xFF is looked at.)
    is_marker = (after != 0x00) & (after != 0xFF) & ((after < 0xD0) | (after > 0xD7))
    stop = ff[is_marker.argmax()] if is_marker.any() else stream.size
    stream = stream[:stop]
    n_pieces = 1 + int(np.count_nonzero((after >= 0xD0) & (after <= 0xD7) & (ff + 1 < stop)))
    if not restarts:
        n_pieces = 1
    buf = np.zeros(stream.size + n_pieces * (_MARGIN_BYTES + 3), np.uint8)
    seg_start, seg_bits = np.zeros(n_pieces, np.int64), np.zeros(n_pieces, np.int64)
    n_pieces = _unstuff_kernel(stream, restarts, _MARGIN_BYTES + 3, buf, seg_start, seg_bits)
    used = min(n_pieces, -(-n_units // units_per_segment))
    first = np.arange(used, dtype=np.int64) * units_per_segment
    seg_blocks = np.stack([first, np.minimum(first + units_per_segment, n_units)], 1)
    seg_blocks *= blocks_per_unit
    dc = [_packed_codes(*spec[:2]) for _, spec, _ in scan]
    ac = [_packed_codes(*spec[:2]) for _, _, spec in scan]
    comp_offset = np.array([comp["offset"] for comp, _, _ in scan], np.int64)
    status = _decode_blocks_kernel(
        buf, seg_start[:used], seg_bits[:used], seg_blocks, block_slot.astype(np.int64),
        block_index + comp_offset[block_slot],
        np.stack([fast for fast, _ in dc]), np.stack([full for _, full in dc]),
        np.stack([fast for fast, _ in ac]), np.stack([full for _, full in ac]),
        _DEZIGZAG_ARRAY, np.stack([qtables[comp["tq"]] for comp, _, _ in scan]),
        frame["coef"])
    if status:
        raise ImageError(_KERNEL_ERRORS[status])
    if used * units_per_segment < n_units:
        raise ImageError("the file is truncated (image data ends early)")
    return pos + stop


_FAST_BITS = 9  # as stb's FAST_BITS: codes this short are found with a 512-entry table


@functools.lru_cache(maxsize=32)
def _packed_codes(counts: tuple, symbols: bytes):
    """_huffman_codes as (fast, full) uint16 tables of length << 8 | symbol (0 = no code):
    full indexed by the next 16 bits, fast by the next 9 for codes of up to 9 bits (the
    small table stays in cache; stbi__build_huffman's fast table plays the same part)."""
    lengths, values = _huffman_codes(counts, symbols)
    full = (lengths.astype(np.uint16) << 8) | values
    fast = full[::1 << (16 - _FAST_BITS)].copy()
    fast[(fast >> 8) > _FAST_BITS] = 0
    return fast, full


@_jit
def _unstuff_kernel(stream, restarts, margin, buf, seg_start, seg_bits):
    """_split_restarts (when restarts) then _unstuff on each piece, into buf: each piece
    followed by `margin` zero bytes (reads past its end see zeros). Returns the count."""
    n = stream.size
    pieces = 0
    out = 0
    start = 0
    i = 0
    while True:
        stop = -1
        while i < n - 1:  # look for the next restart marker, stepping as _split_restarts
            if stream[i] == 0xFF:
                after = stream[i + 1]
                if restarts and 0xD0 <= after <= 0xD7:
                    stop = i
                    break
                i += 1 if after == 0xFF else 2
            else:
                i += 1
        hi = n if stop < 0 else stop
        while hi > start and stream[hi - 1] == 0xFF:  # fill bytes before the marker
            hi -= 1
        seg_start[pieces] = out
        for j in range(start, hi):
            if stream[j] == 0x00 and j > start and stream[j - 1] == 0xFF:
                continue  # the 0x00 stuffed after a data 0xFF
            buf[out] = stream[j]
            out += 1
        seg_bits[pieces] = (out - seg_start[pieces]) * 8
        out += margin  # buf is zeroed
        pieces += 1
        if stop < 0:
            return pieces
        start = i = stop + 2


@_jit(inline=True)
def _peek16(buf, bit):
    """The 16 bits from bit position `bit` on (buf holds 3 zero bytes past any read)."""
    i = bit >> 3
    word = (np.int64(buf[i]) << 16) | (np.int64(buf[i + 1]) << 8) | np.int64(buf[i + 2])
    return (word >> (8 - (bit & 7))) & 0xFFFF


@_jit
def _decode_blocks_kernel(buf, seg_start, seg_bits, seg_blocks, block_slot, block_index,
                          dc_fast, dc_full, ac_fast, ac_full, dezigzag, qt, coef):
    """stbi__jpeg_decode_block for every block of a scan, dequantised into coef (int16,
    wrapping like stb's short). Returns 0, _BAD_CODE or _TRUNCATED, as _decode_blocks
    raises: a bad code at once, running out of data after the block that does."""
    block = np.zeros(65, np.int64)  # natural order, plus the spare slot end-of-block hits
    pred = np.zeros(dc_full.shape[0], np.int64)
    shift = 16 - _FAST_BITS
    for s in range(seg_start.size):
        bit, end = seg_start[s] * 8, seg_start[s] * 8 + seg_bits[s]
        pred[:] = 0  # each restart interval starts its DC prediction afresh
        for b in range(seg_blocks[s, 0], seg_blocks[s, 1]):
            slot = block_slot[b]
            block[:] = 0
            w = _peek16(buf, bit)
            code = np.int64(dc_fast[slot, w >> shift])
            if code == 0:
                code = np.int64(dc_full[slot, w])
            size = code & 255
            if code == 0 or size > 15:
                return 1
            bit += code >> 8
            diff = 0
            if size > 0:
                diff = _peek16(buf, bit) >> (16 - size)
                bit += size
                if diff < (1 << (size - 1)):  # JPEG 'extend': negative values
                    diff -= (1 << size) - 1
            pred[slot] += diff
            block[0] = pred[slot]
            k = 1
            while k < 64:
                w = _peek16(buf, bit)
                code = np.int64(ac_fast[slot, w >> shift])
                if code == 0:
                    code = np.int64(ac_full[slot, w])
                    if code == 0:
                        return 1
                bit += code >> 8
                rs = code & 255
                size = rs & 15
                value = 0
                if size == 0:  # end of block jumps into the spare slot; 0xF0 = 16 zeros
                    step = 15 if rs == 0xF0 else 80
                else:
                    step = rs >> 4
                    value = _peek16(buf, bit) >> (16 - size)
                    bit += size
                    if value < (1 << (size - 1)):
                        value -= (1 << size) - 1
                k += step
                block[dezigzag[k]] = value
                k += 1
            if bit > end:
                return 2
            row = block_index[b]
            for i in range(64):
                coef[row, i] = block[i] * qt[slot, i]
    return 0


def _pixels_compiled(frame, is_rgb) -> np.ndarray:
    """IDCT, upsampling and colour conversion, into a planar (3, h, w) array; returned as a
    (h, w, 3) view like the NumPy path's result."""
    width, height, comps = frame["width"], frame["height"], frame["comps"]
    out = np.empty((3, height, width), np.uint8)
    for c, comp in enumerate(comps):
        plane = _idct_kernel(comp["coef"], comp["bh"], comp["bw"])
        _upsample_kernel(plane, frame["hmax"] // comp["h"], frame["vmax"] // comp["v"],
                         comp["y"] - 1, out[c])
    if len(comps) == 1:
        out[1] = out[2] = out[0]
    elif not is_rgb:
        _ycbcr_kernel(out)
    return out.transpose(1, 2, 0)


@_jit
def _idct_kernel(coef, bh, bw):
    """stbi__idct_block on every block, into one (bh*8, bw*8) plane. Arithmetic is done in
    int64 and wrapped to int32 before each shift: the NumPy path's int32 (C int) results."""
    plane = np.empty((bh * 8, bw * 8), np.uint8)
    tmp = np.empty(64, np.int64)
    s = np.empty(8, np.int64)
    out = np.empty(8, np.int64)
    for b in range(bh * bw):
        by, bx = (b // bw) * 8, (b % bw) * 8
        dc_only = True
        for i in range(1, 64):
            if coef[b, i] != 0:
                dc_only = False
                break
        if dc_only:  # flat block: every row below is this same one-coefficient row
            s[:] = 0
            s[0] = np.int64(coef[b, 0]) * 4
            _idct_1d_kernel(s, 65536 + (128 << 17), 17, out)
            v = 0 if out[0] < 0 else (255 if out[0] > 255 else out[0])
            plane[by:by + 8, bx:bx + 8] = v
            continue
        for col in range(8):  # columns, keeping 2 extra bits (+512 rounds the >> 10)
            zero_ac = True
            for i in range(8):
                s[i] = coef[b, i * 8 + col]
                if i > 0 and s[i] != 0:
                    zero_ac = False
            if zero_ac:  # stbi__idct_block's shortcut; the full formula gives s[0] * 4 too
                for i in range(8):
                    tmp[i * 8 + col] = s[0] * 4
                continue
            _idct_1d_kernel(s, 512, 10, out)
            for i in range(8):
                tmp[i * 8 + col] = out[i]
        for row in range(8):  # rows; +65536 rounds the >> 17, 128 << 17 is the level shift
            for i in range(8):
                s[i] = tmp[row * 8 + i]
            _idct_1d_kernel(s, 65536 + (128 << 17), 17, out)
            for i in range(8):
                v = out[i]
                plane[by + row, bx + i] = 0 if v < 0 else (255 if v > 255 else v)
    return plane


_K = _IDCT  # short names for the kernel below (numba reads module globals as constants)
_C0541, _M1847, _C0765, _C1175 = _K["c0541"], _K["m1847"], _K["c0765"], _K["c1175"]
_C0298, _C2053, _C3072, _C1501 = _K["c0298"], _K["c2053"], _K["c3072"], _K["c1501"]
_M0899, _M2562, _M1961, _M0390 = _K["m0899"], _K["m2562"], _K["m1961"], _K["m0390"]


@_jit(inline=True)
def _idct_1d_kernel(s, bias, shift, out):
    """STBI__IDCT_1D plus the butterfly of _idct_1d/_idct_butterfly, for one row/column."""
    p1 = (s[2] + s[6]) * _C0541
    t2 = p1 + s[6] * _M1847
    t3 = p1 + s[2] * _C0765
    t0 = (s[0] + s[4]) * 4096
    t1 = (s[0] - s[4]) * 4096
    x0, x3, x1, x2 = t0 + t3 + bias, t0 - t3 + bias, t1 + t2 + bias, t1 - t2 + bias
    t0, t1, t2, t3 = s[7], s[5], s[3], s[1]
    p3, p4, p1, p2 = t0 + t2, t1 + t3, t0 + t3, t1 + t2
    p5 = (p3 + p4) * _C1175
    t0, t1, t2, t3 = t0 * _C0298, t1 * _C2053, t2 * _C3072, t3 * _C1501
    p1 = p5 + p1 * _M0899
    p2 = p5 + p2 * _M2562
    p3, p4 = p3 * _M1961, p4 * _M0390
    t3, t2, t1, t0 = t3 + p1 + p4, t2 + p2 + p3, t1 + p2 + p4, t0 + p1 + p3
    out[0] = np.int64(np.int32(x0 + t3)) >> shift
    out[1] = np.int64(np.int32(x1 + t2)) >> shift
    out[2] = np.int64(np.int32(x2 + t1)) >> shift
    out[3] = np.int64(np.int32(x3 + t0)) >> shift
    out[4] = np.int64(np.int32(x3 - t0)) >> shift
    out[5] = np.int64(np.int32(x2 - t1)) >> shift
    out[6] = np.int64(np.int32(x1 - t2)) >> shift
    out[7] = np.int64(np.int32(x0 - t3)) >> shift


@_jit
def _upsample_kernel(plane, hs, vs, last_row, out):
    """_upsample for one component into out (height, width): stbi__resample_row_hv_2,
    _h_2, _v_2 and the generic nearest-neighbour resampler, with stb's edge handling."""
    height, width = out.shape
    lores_w = -(-width // hs)
    t = np.empty(lores_w, np.int64)
    for r in range(height):
        near = min(r // vs, last_row)
        if hs == 1 and vs == 1:
            for x in range(width):
                out[r, x] = plane[near, x]
        elif vs == 2 and (hs == 1 or hs == 2):
            far = near + 1 if r % 2 else near - 1  # even rows lean on the row above
            far = 0 if far < 0 else (last_row if far > last_row else far)
            for x in range(lores_w):
                t[x] = 3 * np.int64(plane[near, x]) + plane[far, x]
            if hs == 1:  # stbi__resample_row_v_2
                for x in range(width):
                    out[r, x] = (t[x] + 2) >> 2
            else:
                _resample_hv_2(t, lores_w, width, out[r])
        elif hs == 2 and vs == 1:
            for x in range(lores_w):
                t[x] = plane[near, x]
            _resample_h_2(t, lores_w, width, out[r])
        else:
            for x in range(width):
                out[r, x] = plane[near, x // hs]
    return out


@_jit(inline=True)
def _resample_hv_2(t, n, width, row):
    """stbi__resample_row_hv_2's horizontal half on t = 3*near + far (as _upsample_hv2)."""
    if n == 1:
        for x in range(min(2, width)):
            row[x] = (t[0] + 2) >> 2
        return
    values = np.empty(2 * n, np.int64)
    values[0] = (t[0] + 2) >> 2
    for i in range(n - 1):
        values[2 * i + 1] = (3 * t[i] + t[i + 1] + 8) >> 4
        values[2 * i + 2] = (3 * t[i + 1] + t[i] + 8) >> 4
    values[2 * n - 1] = (t[n - 1] + 2) >> 2
    for x in range(width):
        row[x] = values[x]


@_jit(inline=True)
def _resample_h_2(x, n, width, row):
    """stbi__resample_row_h_2 (as _upsample_h2), including its right-edge quirk."""
    if n == 1:
        for i in range(min(2, width)):
            row[i] = x[0]
        return
    values = np.empty(2 * n, np.int64)
    values[0] = x[0]
    values[1] = (3 * x[0] + x[1] + 2) >> 2
    for i in range(1, n - 1):
        values[2 * i] = (3 * x[i] + x[i - 1] + 2) >> 2
        values[2 * i + 1] = (3 * x[i] + x[i + 1] + 2) >> 2
    values[2 * n - 2] = (3 * x[n - 2] + x[n - 1] + 2) >> 2  # stb's quirk, see _upsample_h2
    values[2 * n - 1] = x[n - 1]
    for i in range(width):
        row[i] = values[i]


_CR_R, _CR_G, _CB_G, _CB_B = _YCC["cr_r"], _YCC["cr_g"], _YCC["cb_g"], _YCC["cb_b"]


@_jit
def _ycbcr_kernel(img):
    """stbi__YCbCr_to_RGB_row in place on a planar (3, h, w) uint8 image."""
    for r in range(img.shape[1]):
        for x in range(img.shape[2]):
            y_fixed = (np.int64(img[0, r, x]) << 20) + (1 << 19)
            cb, cr = np.int64(img[1, r, x]) - 128, np.int64(img[2, r, x]) - 128
            red = (y_fixed + cr * _CR_R) >> 20
            green = (y_fixed - cr * _CR_G + ((cb * -_CB_G) & ~0xFFFF)) >> 20
            blue = (y_fixed + cb * _CB_B) >> 20
            img[0, r, x] = 0 if red < 0 else (255 if red > 255 else red)
            img[1, r, x] = 0 if green < 0 else (255 if green > 255 else green)
            img[2, r, x] = 0 if blue < 0 else (255 if blue > 255 else blue)
