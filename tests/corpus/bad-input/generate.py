#!/usr/bin/env python3
"""Writes the committed bad-input corpus (images/ and bodies/) next to this script.

Standard library only, deterministic: run it again and `git diff` shows nothing. Every image is
built byte by byte so that the odd part (a header field, a chunk, a cut) is exactly the one the
case names. Large inputs (the 10 MB body, the 21 MiB file, 100k-deep JSON, symlinks, a FIFO) are
made by the test at run time instead (tests/worker/corpus.rs).
"""

import base64
import json
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
IMAGES = os.path.join(HERE, "images")
BODIES = os.path.join(HERE, "bodies")


def write(folder, name, data):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


# ---------------------------------------------------------------- PNG

PNG_SIG = b"\x89PNG\r\n\x1a\n"


def chunk(kind, data):
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def ihdr(w, h, depth=8, colour=2):
    return chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, 0))


def png(w, h, depth=8, colour=2, extra=b"", raw=None):
    """A valid PNG; `raw` overrides the filtered scanlines, `extra` goes before IDAT."""
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour]
    row = (w * channels * depth + 7) // 8
    if raw is None:
        raw = b"".join(
            b"\x00" + bytes(((x * 7 + y * 13) & 0xFF) for x in range(row)) for y in range(h)
        )
    return (
        PNG_SIG
        + ihdr(w, h, depth, colour)
        + extra
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def zeros_zlib(n):
    """zlib stream of `n` zero bytes, compressed in pieces so memory stays small."""
    c = zlib.compressobj(9)
    out = []
    piece = bytes(1 << 20)
    while n > 0:
        k = min(n, len(piece))
        out.append(c.compress(piece[:k]))
        n -= k
    out.append(c.flush())
    return b"".join(out)


def png_images():
    good = png(64, 64)
    write(IMAGES, "png-valid-64.png", good)
    write(IMAGES, "png-truncated-in-ihdr.png", good[:20])
    idat = good.index(b"IDAT")
    write(IMAGES, "png-truncated-in-idat.png", good[: idat + 40])
    write(IMAGES, "png-no-iend.png", good[: good.index(b"IEND") - 4])
    bad_crc = bytearray(good)
    bad_crc[idat + 10] ^= 0xFF  # inside the IDAT payload: CRC and zlib both break
    write(IMAGES, "png-idat-corrupt.png", bytes(bad_crc))
    # Header claims 100000 x 100000 RGB (30 GB decoded); the file is a few dozen bytes.
    write(
        IMAGES,
        "png-ihdr-100000x100000.png",
        PNG_SIG
        + ihdr(100_000, 100_000)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b""),
    )
    # Zip-bomb-like: 8192 x 8192 grey, all zero: 64 MiB of scanlines in a ~65 KB file.
    write(
        IMAGES,
        "png-bomb-8192x8192.png",
        PNG_SIG
        + ihdr(8192, 8192, 8, 0)
        + chunk(b"IDAT", zeros_zlib(8192 * 8193))
        + chunk(b"IEND", b""),
    )
    # Same trick at exactly the pixel limit: accepted, 16 MiB decoded from ~17 KB.
    write(
        IMAGES,
        "png-zeros-4096x4096.png",
        PNG_SIG
        + ihdr(4096, 4096, 8, 0)
        + chunk(b"IDAT", zeros_zlib(4096 * 4097))
        + chunk(b"IEND", b""),
    )
    # Ancillary-chunk bombs: an 8x8 image whose iCCP profile inflates to 256 MiB (read with the
    # header) and whose zTXt text inflates to 64 MiB (only on request).
    write(
        IMAGES,
        "png-iccp-bomb.png",
        png(8, 8, extra=chunk(b"iCCP", b"icc\x00\x00" + zeros_zlib(256 << 20))),
    )
    write(
        IMAGES,
        "png-ztxt-bomb.png",
        png(8, 8, extra=chunk(b"zTXt", b"Comment\x00\x00" + zeros_zlib(64 << 20))),
    )
    write(IMAGES, "png-zero-width.png", png(0, 8))
    # Palette image without a PLTE chunk.
    write(IMAGES, "png-palette-without-plte.png", png(8, 8, 8, 3))
    # Unknown critical chunk (upper-case first letter) before IDAT: decoders must refuse it.
    write(IMAGES, "png-unknown-critical-chunk.png", png(8, 8, extra=chunk(b"XXXX", b"abc")))
    write(IMAGES, "png-16bit-rgba.png", png(16, 16, 16, 6))


# ---------------------------------------------------------------- JPEG

def segment(marker, payload):
    return b"\xff" + bytes([marker]) + struct.pack(">H", len(payload) + 2) + payload


def jpeg(w, h, blocks=None, eoi=True):
    """Baseline greyscale JPEG; every 8x8 block is flat grey (DC diff 0, then EOB).

    One-symbol Huffman tables (code `0` for DC category 0, code `0` for EOB) keep the entropy
    data trivial: two bits per block, padded with ones.
    """
    if blocks is None:
        blocks = ((w + 7) // 8) * ((h + 7) // 8)
    dqt = segment(0xDB, b"\x00" + bytes([1] * 64))
    sof = segment(0xC0, struct.pack(">BHHB", 8, h, w, 1) + b"\x01\x11\x00")
    one_symbol = bytes([1] + [0] * 15) + b"\x00"
    dht = segment(0xC4, b"\x00" + one_symbol + b"\x10" + one_symbol)
    sos = segment(0xDA, b"\x01\x01\x00\x00\x3f\x00")
    bits = "00" * blocks
    bits += "1" * (-len(bits) % 8)
    data = bytes(int(bits[i : i + 8], 2) for i in range(0, len(bits), 8))
    return b"\xff\xd8" + dqt + sof + dht + sos + data + (b"\xff\xd9" if eoi else b"")


def jpeg_images():
    good = jpeg(64, 64)
    write(IMAGES, "jpeg-valid-64.jpg", good)
    write(IMAGES, "jpeg-truncated-in-header.jpg", good[:30])
    # Scan data for 4 of 64 blocks, no EOI.
    write(IMAGES, "jpeg-truncated-in-scan.jpg", jpeg(64, 64, blocks=4, eoi=False))
    # 20 bytes of entropy data, header says 65000 x 65000: a decoder that trusts it allocates 4 GB.
    write(IMAGES, "jpeg-sof-65000x65000.jpg", jpeg(65000, 65000, blocks=64))
    # Within the pixel limit, but scan data for one block in a thousand.
    write(IMAGES, "jpeg-sof-4096-short-scan.jpg", jpeg(4096, 4096, blocks=256))
    write(IMAGES, "jpeg-sof-zero-height.jpg", jpeg(64, 0, blocks=8))
    # SOI then EOI: a JPEG with no frame at all.
    write(IMAGES, "jpeg-soi-eoi-only.jpg", b"\xff\xd8\xff\xd9")


# ---------------------------------------------------------------- TIFF

def tiff(w, h, entries, data_blocks, bigendian=False):
    """Little-endian TIFF: header, data blocks, then one IFD.

    `entries` maps tag -> (type, values) where a value may be ("block", i) for the offset of
    data block i. Types: 3 SHORT, 4 LONG.
    """
    e = ">" if bigendian else "<"
    out = bytearray((b"MM" if bigendian else b"II") + struct.pack(e + "HI", 42, 0))
    offsets = []
    for block in data_blocks:
        offsets.append(len(out))
        out += block
        if len(out) % 2:
            out += b"\x00"
    tags = {256: (4, [w]), 257: (4, [h])}
    tags.update(entries)

    def resolve(v):
        return offsets[v[1]] if isinstance(v, tuple) else v

    # Values that do not fit in the entry's 4 bytes go after the IFD.
    ifd_at = len(out)
    n = len(tags)
    spill_at = ifd_at + 2 + 12 * n + 4
    spill = bytearray()
    ifd = bytearray(struct.pack(e + "H", n))
    for tag in sorted(tags):
        typ, values = tags[tag]
        values = [resolve(v) for v in values]
        fmt = {3: "H", 4: "I"}[typ]
        packed = b"".join(struct.pack(e + fmt, v) for v in values)
        if len(packed) <= 4:
            field = packed.ljust(4, b"\x00")
        else:
            field = struct.pack(e + "I", spill_at + len(spill))
            spill += packed
        ifd += struct.pack(e + "HHI", tag, typ, len(values)) + field
    ifd += struct.pack(e + "I", 0)
    out += ifd + spill
    struct.pack_into(e + "I", out, 4, ifd_at)
    return bytes(out)


def pattern(n, seed=0):
    return bytes(((i * 31 + seed) & 0xFF) for i in range(n))


def rgb_tags(bits=8, samples=3, photometric=2, planar=1):
    return {
        258: (3, [bits] * samples),
        259: (3, [1]),
        262: (3, [photometric]),
        277: (3, [samples]),
        284: (3, [planar]),
    }


def strip_tiff(w, h, bits=8, samples=3, photometric=2, rows_per_strip=None, compression=1):
    rows = rows_per_strip or h
    row_bytes = (w * samples * bits + 7) // 8
    strips = [pattern(row_bytes * min(rows, h - y), y) for y in range(0, h, rows)]
    tags = rgb_tags(bits, samples, photometric)
    tags[259] = (3, [compression])
    tags[273] = (4, [("block", i) for i in range(len(strips))])
    tags[278] = (4, [rows])
    tags[279] = (4, [len(s) for s in strips])
    return tiff(w, h, tags, strips)


def tiff_images():
    write(IMAGES, "tiff-valid-rgb8.tif", strip_tiff(32, 32))
    write(IMAGES, "tiff-rgb16.tif", strip_tiff(32, 32, bits=16))
    write(IMAGES, "tiff-big-endian.tif", tiff(16, 16, {
        **rgb_tags(), 273: (4, [("block", 0)]), 278: (4, [16]), 279: (4, [768])},
        [pattern(768)], bigendian=True))
    write(IMAGES, "tiff-one-row-per-strip.tif", strip_tiff(32, 256, rows_per_strip=1))
    write(IMAGES, "tiff-cmyk.tif", strip_tiff(32, 32, samples=4, photometric=5))
    write(IMAGES, "tiff-bilevel.tif", strip_tiff(32, 32, bits=1, samples=1, photometric=1))
    # Planar configuration 2: one strip per colour plane.
    planes = [pattern(32 * 32, s) for s in range(3)]
    planar = rgb_tags(planar=2)
    planar.update({273: (4, [("block", i) for i in range(3)]), 278: (4, [32]),
                   279: (4, [32 * 32] * 3)})
    write(IMAGES, "tiff-planar.tif", tiff(32, 32, planar, planes))
    # Tiled: 64 x 64 in four 32 x 32 tiles.
    tiles = [pattern(32 * 32 * 3, t) for t in range(4)]
    tiled = rgb_tags()
    tiled.update({322: (3, [32]), 323: (3, [32]),
                  324: (4, [("block", i) for i in range(4)]), 325: (4, [32 * 32 * 3] * 4)})
    write(IMAGES, "tiff-tiled.tif", tiff(64, 64, tiled, tiles))
    # Header claims 100000 x 100000 in one strip of 16 bytes.
    huge = rgb_tags()
    huge.update({273: (4, [("block", 0)]), 278: (4, [100_000]), 279: (4, [16])})
    write(IMAGES, "tiff-100000x100000.tif", tiff(100_000, 100_000, huge, [pattern(16)]))
    # Strip offset far past the end of the file.
    oob = rgb_tags()
    oob.update({273: (4, [0x7FFF_0000]), 278: (4, [32]), 279: (4, [32 * 32 * 3])})
    write(IMAGES, "tiff-strip-past-eof.tif", tiff(32, 32, oob, []))
    # StripOffsets claims a billion entries stored past the end of the file.
    tags = rgb_tags()
    tags.update({278: (4, [32]), 279: (4, [3072])})
    lying = bytearray(tiff(32, 32, {**tags, 273: (4, [0, 0])}, []))
    # Patch the StripOffsets entry in place: count 1e9, offset past EOF.
    ifd_at = struct.unpack_from("<I", lying, 4)[0]
    for i in range(struct.unpack_from("<H", lying, ifd_at)[0]):
        at = ifd_at + 2 + 12 * i
        if struct.unpack_from("<H", lying, at)[0] == 273:
            struct.pack_into("<II", lying, at + 4, 1_000_000_000, 0x10000)
    write(IMAGES, "tiff-strip-count-1e9.tif", bytes(lying))
    # Compression 34712 (JPEG 2000): not supported.
    write(IMAGES, "tiff-jpeg2000-compression.tif", strip_tiff(32, 32, compression=34712))
    # LZW compression with garbage as the compressed strip.
    write(IMAGES, "tiff-lzw-garbage.tif", strip_tiff(32, 32, compression=5))
    write(IMAGES, "tiff-header-only.tif", b"II*\x00\x08\x00\x00\x00")


# ---------------------------------------------------------------- BMP

def bmp(w, h, bpp=24, pixels=None, colours_used=0, file_size=None):
    row = ((w * bpp + 31) // 32) * 4
    if pixels is None:
        pixels = pattern(row * abs(h))
    palette = b"" if bpp > 8 else bytes(4 * (1 << bpp))
    offset = 14 + 40 + len(palette)
    size = file_size if file_size is not None else offset + len(pixels)
    header = b"BM" + struct.pack("<IHHI", size, 0, 0, offset)
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, bpp, 0, len(pixels), 2835, 2835,
                       colours_used, 0)
    return header + info + palette + pixels


def bmp_images():
    write(IMAGES, "bmp-valid.bmp", bmp(16, 16))
    write(IMAGES, "bmp-top-down.bmp", bmp(16, -16))
    write(IMAGES, "bmp-height-int-min.bmp", bmp(16, -(2**31), pixels=pattern(64)))
    write(IMAGES, "bmp-width-100000.bmp", bmp(100_000, 1, pixels=pattern(64)))
    write(IMAGES, "bmp-truncated-pixels.bmp", bmp(64, 64)[: 54 + 100])
    write(IMAGES, "bmp-palette-4g-colours.bmp", bmp(16, 16, bpp=8, colours_used=0xFFFF_FFFF))


# ---------------------------------------------------------------- other formats

def other_images():
    write(IMAGES, "zero-bytes.png", b"")
    # GIF89a 1x1 and a lossless WebP header: recognised formats the worker does not support.
    write(IMAGES, "gif-1x1.gif", base64.b64decode(
        "R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"))
    write(IMAGES, "webp-1x1.webp", base64.b64decode(
        "UklGRhoAAABXRUJQVlA4TA0AAAAvAAAAEAcQERGIiP4HAA=="))
    write(IMAGES, "svg.svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"/>')
    write(IMAGES, "text.png", b"this is not an image at all\n")


# ---------------------------------------------------------------- event bodies

def event(capture_id, image=None, **override):
    e = {
        "schema": "iari.capture.v1",
        "capture_id": capture_id,
        "captured_at": "2026-11-26T10:15:00Z",
        "analyzer": {"id": "HCM-01"},
        "plate": {"id": "PLT0042", "well": "A1"},
        "specimen": {"accession": "S26-001234"},
        "image": image or {"path": "good.png"},
    }
    e.update(override)
    return e


def dumps(v):
    return json.dumps(v, ensure_ascii=False).encode()


def bodies():
    b = lambda name, data: write(BODIES, name, data)
    b("empty.json", b"")
    b("not-json.json", b"{ this is not json")
    b("invalid-utf8.json", dumps(event("body-invalid-utf8")).replace(b"DOE", b"x")
      .replace(b"S26-001234", b"S26-\xff\xfe1234"))
    b("bom.json", b"\xef\xbb\xbf" + dumps(event("body-bom")))
    b("utf16.json", json.dumps(event("body-utf16")).encode("utf-16"))
    b("json-array.json", b"[]")
    b("json-null.json", b"null")
    b("trailing-garbage.json", dumps(event("body-trailing-garbage")) + b"}")
    b("lone-surrogate.json", dumps(event("body-lone-surrogate")).replace(
        b'"HCM-01"', b'"HCM-\\ud800"'))
    # Duplicate keys: the last one wins in most parsers, the first in some. Either way the
    # event means two things.
    b("duplicate-capture-id.json",
      b'{"capture_id": "body-duplicate-capture-id", ' + dumps(event("OTHER-ID"))[1:])
    b("duplicate-schema.json",
      b'{"schema": "iari.capture.v9", ' + dumps(event("body-duplicate-schema"))[1:])
    b("duplicate-image-path.json",
      dumps(event("body-duplicate-image-path"))
      .replace(b'"path": "good.png"', b'"path": "good.png", "path": "../etc/passwd"'))
    b("schema-missing.json", dumps({k: v for k, v in event("body-schema-missing").items()
                                    if k != "schema"}))
    b("schema-v2.json", dumps(event("body-schema-v2", schema="iari.capture.v2")))
    b("schema-number.json", dumps(event("body-schema-number", schema=1)))
    b("capture-id-number.json", dumps(event(12345)))
    b("capture-id-65.json", dumps(event("X" * 65)))
    b("capture-id-empty.json", dumps(event("")))
    b("capture-id-slash.json", dumps(event("PLT/0042")))
    b("capture-id-space.json", dumps(event("PLT 0042")))
    b("capture-id-non-ascii.json", dumps(event("PLT0042-Ä01")))
    for well in ["I1", "A13", "a0", "A", "1A", "A1x", "A001"]:
        b(f"well-{well}.json", dumps(event(f"body-well-{well}",
                                           plate={"id": "PLT0042", "well": well})))
    b("well-number.json", dumps(event("body-well-number", plate={"id": "PLT0042", "well": 1})))
    b("captured-at-no-offset.json",
      dumps(event("body-captured-at-no-offset", captured_at="2026-11-26T10:15:00")))
    b("captured-at-garbage.json",
      dumps(event("body-captured-at-garbage", captured_at="yesterday")))
    b("analyzer-id-33.json", dumps(event("body-analyzer-id-33", analyzer={"id": "A" * 33})))
    b("analyzer-id-control.json",
      dumps(event("body-analyzer-id-control", analyzer={"id": "HCM\t01"})))
    b("analyzer-not-object.json", dumps(event("body-analyzer-not-object", analyzer="HCM-01")))
    b("accession-blank.json", dumps(event("body-accession-blank", specimen={"accession": "   "})))
    b("patient-not-object.json", dumps(event("body-patient-not-object", patient="DOE^JANE")))
    b("patient-name-only.json", dumps(event("body-patient-name-only",
                                            patient={"family": "DOE", "given": "JANE"})))
    b("patient-bad-sex.json", dumps(event("body-patient-bad-sex",
                                          patient={"mrn": "MRN1", "sex": "female"})))
    b("image-both.json", dumps(event("body-image-both", {
        "path": "good.png", "data_base64": "AAAA", "media_type": "image/png"})))
    b("image-neither.json", dumps(event("body-image-neither", {"sha256": "00" * 32})))
    b("image-gif-media-type.json", dumps(event("body-image-gif-media-type", {
        "data_base64": "R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7",
        "media_type": "image/gif"})))
    b("image-no-media-type.json", dumps(event("body-image-no-media-type", {
        "data_base64": "AAAA"})))
    b("image-path-empty.json", dumps(event("body-image-path-empty", {"path": ""})))
    b("image-path-nul.json", dumps(event("body-image-path-nul", {"path": "good.png\u0000.jpg"})))
    b("image-path-newline.json", dumps(event("body-image-path-newline", {"path": "good\n.png"})))
    b("image-path-number.json", dumps(event("body-image-path-number", {"path": 5})))
    b("sha256-not-hex.json", dumps(event("body-sha256-not-hex", {
        "path": "good.png", "sha256": "z" * 64})))
    b("sha256-short.json", dumps(event("body-sha256-short", {
        "path": "good.png", "sha256": "ab" * 16})))
    b("base64-garbage.json", dumps(event("body-base64-garbage", {
        "data_base64": "!!!! not base64 ####", "media_type": "image/png"})))
    b("base64-urlsafe.json", dumps(event("body-base64-urlsafe", {
        "data_base64": "-_-_", "media_type": "image/png"})))
    b("base64-no-padding.json", dumps(event("body-base64-no-padding", {
        "data_base64": "iVBORw0KGgo", "media_type": "image/png"})))
    b("base64-empty.json", dumps(event("body-base64-empty", {
        "data_base64": "", "media_type": "image/png"})))


if __name__ == "__main__":
    png_images()
    jpeg_images()
    tiff_images()
    bmp_images()
    other_images()
    bodies()
