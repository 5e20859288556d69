"""Read and write JWST products: FITS MEF with an ASDF metadata extension.

A product in memory is a :class:`Product`: the datamodel class name, a nested ``meta``
dict under the datamodel attribute names (``meta["exposure"]["ngroups"]``), arrays by
attribute name (``data``, ``dq``, ``groupdq`` ...) and tables. Reading is lazy: arrays
come from a memory map (or, for scaled integer data, are decoded on first use), and
:meth:`Product.rows` reads a block of rows of a ramp without touching the rest.

On disk the layout is the one stdatamodels writes: each ``meta`` attribute that has a
FITS keyword goes into the header its schema names, each array into its extension, and
the whole ``meta`` tree into an ``ASDF`` BINTABLE. No ``_fits_hash`` is stored, so
readers take the FITS keywords as authoritative, which keeps headers edited by hand
(``fits.setval``) meaningful.
"""

import io as _io
import math
import os
import secrets
import threading
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import yaml
from astropy.io import fits

from webbflow.errors import WebbflowError
from webbflow.io.direct import DirectWriter, open_direct, populate_in_background, read_span
from webbflow.io import datamodels

_ASDF_EXTNAME = "ASDF"


class Product:
    """One JWST product: ``model_type``, ``meta``, ``arrays``, ``tables``."""

    def __init__(self, model_type, meta=None, arrays=None, tables=None, extra_tree=None,
                 path=None):
        self.model_type = model_type
        self.meta = meta if meta is not None else {}
        self.tables = dict(tables or {})
        self.extra_tree = dict(extra_tree or {})
        self.path = Path(path) if path else None
        self._arrays = dict(arrays or {})
        self._lazy = {}
        self._hdulist = None

    # arrays are read on first use so that opening a 4-D ramp costs nothing
    @property
    def arrays(self):
        for name in list(self._lazy):
            self._load(name)
        return self._arrays

    def has(self, name):
        return name in self._arrays or name in self._lazy

    def __getitem__(self, name):
        if name not in self._arrays and name in self._lazy:
            self._load(name)
        try:
            return self._arrays[name]
        except KeyError:
            raise WebbflowError(self.path or self.model_type, f"has no {name} array") from None

    def __setitem__(self, name, array):
        self._lazy.pop(name, None)
        self._arrays[name] = array

    def _load(self, name):
        shape = self.shape(name)
        self._arrays[name] = (self.rows(name, 0, shape[-2]) if len(shape) >= 2
                              else self.rows(name, 0, 1).reshape(shape))
        self._lazy.pop(name)

    def rows(self, name, start, stop, dtype=None, first=None, direct=False):
        """Rows ``start:stop`` (second-last axis) of an image array, in native byte order.

        Lazy arrays are read from the file plane by plane with plain reads, never through
        a memory map, so only the rows asked for occupy memory. ``dtype`` converts on the
        way (``np.float32`` turns a uint16 ramp into the working cube without a uint16
        copy of the whole of it). ``first=(i0, i1)`` keeps only that range of the first
        axis (integrations of a ramp). ``direct``: whole planes of at least
        DIRECT_READ_BYTES are read past the page cache (webbflow.io.direct), for data
        read once, such as a raw ramp. Files that many jobs read (references) are better
        served from the page cache: a cached 211 MB MIRI dark plane set reads in 0.1 s
        that way, in 0.3 s with O_DIRECT.
        """
        if name not in self._lazy:
            block = self[name][..., start:stop, :]
            if first is not None:
                block = block[first[0]:first[1]]
            return block if dtype is None else block.astype(dtype)
        lazy = self._lazy[name]
        shape = self.shape(name)
        if len(shape) < 2:
            shape = (1,) + shape
        ny, nx = shape[-2:]
        start, stop = max(0, start), min(ny, stop)
        stored = np.dtype(_STORED[lazy.header["BITPIX"]])
        bzero = lazy.header.get("BZERO", 0)
        bscale = lazy.header.get("BSCALE", 1)
        if dtype is None:
            dtype = _decoded_dtype(stored, bzero, bscale)
        if len(shape) >= 3:
            i0, i1 = (0, shape[0]) if first is None else first
            per_first = int(np.prod(shape[1:-2], dtype=np.int64))
            out_shape = (i1 - i0,) + shape[1:-2] + (stop - start, nx)
        else:
            i0, i1, per_first, out_shape = 0, 1, 1, (stop - start, nx)
        planes = (i1 - i0) * per_first
        out = np.empty(out_shape, dtype=dtype)
        plane_bytes = ny * nx * stored.itemsize
        offset = lazy.offset + i0 * per_first * plane_bytes
        if direct and start == 0 and stop == ny and planes * plane_bytes >= DIRECT_READ_BYTES:
            # whole planes (a raw ramp, integrations at a time): one span, read past the
            # page cache (webbflow.io.direct), decoded piece by piece into pages faulted
            # in meanwhile by another thread
            populate_in_background(out)
            items = out.reshape(-1)

            def decode(piece, position):
                first_item = position // stored.itemsize
                raw = piece.view(stored)
                items[first_item:first_item + raw.size] = _decode_in_place(raw, bzero, bscale)

            try:
                if read_span(self.path, offset, planes * plane_bytes, decode):
                    return out
            except (OSError, EOFError) as exc:
                raise WebbflowError(self.path, f"cannot read extension {lazy.extname}: "
                                               f"{exc}") from None
        flat = out.reshape(planes, stop - start, nx)
        buffer = np.empty((stop - start, nx), dtype=stored)
        try:
            with open(self.path, "rb") as handle:
                for plane in range(planes):
                    handle.seek(offset + plane * plane_bytes + start * nx * stored.itemsize)
                    if handle.readinto(buffer) != buffer.nbytes:
                        raise EOFError("file ends inside the data")
                    flat[plane] = _decode_in_place(buffer, bzero, bscale)
        except (OSError, EOFError) as exc:
            raise WebbflowError(self.path, f"cannot read extension {lazy.extname}: {exc}") from None
        return out

    def shape(self, name):
        if name in self._lazy:
            header = self._lazy[name].header
            return tuple(header[f"NAXIS{i}"] for i in range(header["NAXIS"], 0, -1))
        return self[name].shape

    def get(self, dotted, default=None):
        return get_meta(self.meta, dotted, default)

    def set(self, dotted, value):
        set_meta(self.meta, dotted, value)

    def close(self):
        """Release the FITS handle. Arrays not read yet stay readable: they are read
        from the file by offset, not through the handle."""
        if self._hdulist is not None:
            self._hdulist.close()
            self._hdulist = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@dataclass(frozen=True)
class _LazyArray:
    """Where an array not read yet lies in its file: its header and data offset."""

    header: fits.Header
    extname: str
    offset: int


# reads of whole planes at least this big may go past the page cache (Product.rows)
DIRECT_READ_BYTES = 4 << 20

_STORED = {8: ">u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}


def _decoded_dtype(stored, bzero, bscale):
    """What the stored integers mean: uint16/uint32 for the FITS unsigned convention."""
    if bscale == 1 and stored == np.dtype(">i2") and bzero == 32768:
        return np.dtype(np.uint16)
    if bscale == 1 and stored == np.dtype(">i4") and bzero == 2**31:
        return np.dtype(np.uint32)
    if bzero or bscale != 1:
        return np.dtype(np.float32)
    return stored.newbyteorder("=")


def _decode_in_place(raw, bzero, bscale):
    """:func:`_decode`, the unsigned cases flipping the sign bit of ``raw`` itself (a read
    buffer): no temporary, and the one byte-swapping pass is the caller's conversion."""
    unsigned = {np.dtype(">i2"): (">u2", 32768), np.dtype(">i4"): (">u4", 2**31)}.get(raw.dtype)
    if bscale != 1 or unsigned is None or bzero != unsigned[1]:
        return _decode(raw, bzero, bscale)
    stored = raw.view(unsigned[0])
    native = stored.view(stored.dtype.newbyteorder("="))
    flip = np.array([unsigned[1]], dtype=stored.dtype).view(native.dtype)[0]
    np.bitwise_xor(native, flip, out=native)
    return stored


def _decode(raw, bzero, bscale):
    """Apply BSCALE/BZERO to stored values (a view or a small temporary)."""
    if bscale == 1 and raw.dtype == np.dtype(">i2") and bzero == 32768:
        return raw.view(">u2") ^ np.uint16(0x8000)
    if bscale == 1 and raw.dtype == np.dtype(">i4") and bzero == 2**31:
        return raw.view(">u4") ^ np.uint32(0x80000000)
    if bzero or bscale != 1:
        return raw.astype(np.float32) * np.float32(bscale) + np.float32(bzero)
    return raw


def get_meta(meta, dotted, default=None):
    node = meta
    for key in dotted.removeprefix("meta.").split("."):
        if not isinstance(node, dict) or key not in node:
            return default
        node = node[key]
    return node


def set_meta(meta, dotted, value):
    keys = dotted.removeprefix("meta.").split(".")
    node = meta
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value


def flatten_meta(meta, prefix="META"):
    """{'META.INSTRUMENT.NAME': 'NIRCAM', ...}: the form CRDS parkeys take."""
    flat = {}
    for key, value in meta.items():
        name = f"{prefix}.{key.upper()}"
        if isinstance(value, dict):
            flat.update(flatten_meta(value, name))
        elif isinstance(value, (str, int, float, bool)):
            flat[name] = value
    return flat


# ---------------------------------------------------------------------------- reading


def _check_complete(path, hdulist):
    size = os.path.getsize(path)
    if size % 2880:
        raise WebbflowError(path, f"truncated file: {size} bytes is not a whole number of "
                                  "2880-byte FITS blocks")
    for index, hdu in enumerate(hdulist):
        info = hdulist.fileinfo(index)
        if info["datLoc"] + hdu.size > size:
            name = hdu.name or f"HDU {index}"
            raise WebbflowError(path, f"truncated file: extension {name} needs "
                                      f"{info['datLoc'] + hdu.size} bytes, file has {size}")


class _TagTolerantLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """YAML loader that reads tagged nodes (``!core/ndarray-1.0.0``, gwcs objects) as
    plain mappings, sequences and scalars."""


def _construct_untagged(loader, suffix, node):
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


_TagTolerantLoader.add_multi_constructor("!", _construct_untagged)
_TagTolerantLoader.add_multi_constructor("tag:", _construct_untagged)

_ASDF_PREAMBLE = (b"#ASDF 1.0.0\n#ASDF_STANDARD 1.5.0\n%YAML 1.1\n%TAG ! tag:stsci.edu:asdf/\n"
                  b"--- !core/asdf-1.1.0\n")


def _is_plain(value):
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(_is_plain(v) for v in value)
    return value is None or isinstance(value, (str, int, float, bool))


def _read_asdf_tree(path, hdulist):
    """The ASDF metadata tree. Plain YAML is parsed directly: loading the asdf library's
    extensions costs seconds per process, which every Snakemake job would pay."""
    if _ASDF_EXTNAME not in hdulist:
        return {}
    raw = hdulist[_ASDF_EXTNAME].data["ASDF_METADATA"][0].tobytes()
    try:
        text = raw.split(b"\n...", 1)[0]
        tree = yaml.load(text, Loader=_TagTolerantLoader)
        if isinstance(tree, dict):
            return {k: v for k, v in tree.items()
                    if not k.startswith("asdf_library") and k != "history"}
    except yaml.YAMLError:
        pass
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import asdf  # noqa: PLC0415 - seconds of extension loading, only for tagged trees

            with asdf.open(_io.BytesIO(raw), lazy_load=False, memmap=False,
                           ignore_unrecognized_tag=True, ignore_missing_extensions=True) as af:
                return {k: v for k, v in af.tree.items()
                        if not k.startswith("asdf_library") and k not in ("history",)}
    except Exception as exc:
        raise WebbflowError(path, f"unreadable ASDF metadata extension: {exc}") from None


def read_wcs(path):
    """The gwcs object a calibrated product carries in its ASDF tree (meta.wcs)."""
    path = Path(path)
    try:
        with fits.open(path, memmap=False) as hdulist:
            if _ASDF_EXTNAME not in hdulist:
                raise WebbflowError(path, "has no ASDF extension, so no WCS")
            raw = hdulist[_ASDF_EXTNAME].data["ASDF_METADATA"][0].tobytes()
    except OSError as exc:
        raise WebbflowError(path, f"not a readable FITS file ({exc})") from None
    import asdf  # noqa: PLC0415 - seconds of extension loading, only where a WCS is needed

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with asdf.open(_io.BytesIO(raw), lazy_load=False, memmap=False) as af:
                wcs = af.tree.get("meta", {}).get("wcs")
    except Exception as exc:
        raise WebbflowError(path, f"unreadable ASDF metadata extension: {exc}") from None
    if wcs is None:
        raise WebbflowError(path, "has no WCS (meta.wcs); was assign_wcs run?")
    return wcs


def _guess_model_type(hdulist):
    if "SCI" not in hdulist:
        return None
    ndim = hdulist["SCI"].header.get("NAXIS", 0)
    if ndim == 4:
        return "RampModel" if "PIXELDQ" in hdulist else "Level1bModel"
    return {3: "CubeModel", 2: "ImageModel"}.get(ndim)


def _header_value(value):
    if isinstance(value, (fits.card.Undefined, type(None))):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_product(path, *, model_type=None, require=None):
    """Open a product or reference file lazily.

    ``require`` names the arrays that must be present (default: ``data`` when the
    datamodel has one); a missing one, a truncated file or a non-FITS file raises
    :class:`WebbflowError` with a one-line message.
    """
    path = Path(path)
    if not path.exists():
        raise WebbflowError(path, "no such file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", fits.verify.VerifyWarning)
            hdulist = fits.open(path, memmap=True, lazy_load_hdus=False)
    except Exception as exc:
        raise WebbflowError(path, f"not a readable FITS file ({exc})") from None
    try:
        _check_complete(path, hdulist)
        tree = _read_asdf_tree(path, hdulist)
        primary = hdulist[0].header
        model_type = model_type or primary.get("DATAMODL") or _guess_model_type(hdulist)
        if model_type is None:
            raise WebbflowError(path, "no DATAMODL keyword and no SCI extension to infer it from")
        try:
            layout_keywords = datamodels.keywords_by_hdu(model_type)
            arrays = datamodels.array_hdus(model_type)
            tables = datamodels.table_hdus(model_type)
        except KeyError:
            raise WebbflowError(path, f"unsupported datamodel {model_type}") from None

        meta = tree.pop("meta", {}) or {}
        if not isinstance(meta, dict):
            meta = {}
        for hdu_name, entries in layout_keywords.items():
            if hdu_name not in hdulist:
                continue
            header = hdulist[hdu_name].header
            for dotted, keyword in entries:
                if keyword in header:
                    value = _header_value(header[keyword])
                    if value is not None:
                        set_meta(meta, dotted, value)
        meta["model_type"] = model_type

        product = Product(model_type, meta=meta, path=path)
        product._hdulist = hdulist
        for name, (extname, _dtype, _ndim) in arrays.items():
            if extname in hdulist and hdulist[extname].header.get("NAXIS", 0) > 0:
                index = hdulist.index_of(extname)
                product._lazy[name] = _LazyArray(hdulist[index].header.copy(), extname,
                                                 hdulist.fileinfo(index)["datLoc"])
        for name, extname in tables.items():
            if extname in hdulist:
                product.tables[name] = np.asarray(hdulist[extname].data)
        for key in ("data",):
            tree.pop(key, None)
        product.extra_tree = {k: v for k, v in tree.items()
                              if k not in arrays and k not in tables and not k.startswith("_")}
        if require is None:
            require = ("data",) if "data" in arrays else ()
        for name in require:
            if not product.has(name):
                extname = arrays.get(name, (name.upper(),))[0]
                raise WebbflowError(path, f"missing {extname} extension")
        return product
    except Exception:
        hdulist.close()
        raise


# ---------------------------------------------------------------------------- writing


def _fits_value(value):
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return value if value.isascii() else None
    return None


def _plain(value):
    """Turn numpy scalars in a meta tree into Python values so ASDF stores plain YAML."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _asdf_payload(tree):
    if _is_plain(tree):
        body = yaml.dump(tree, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper),
                         default_flow_style=False, sort_keys=False, allow_unicode=False)
        return _ASDF_PREAMBLE + body.encode() + b"...\n"
    import asdf  # noqa: PLC0415

    buffer = _io.BytesIO()
    asdf.AsdfFile(tree).write_to(buffer)
    return buffer.getvalue()


def _asdf_record(payload):
    """The one-row, one-column table the ASDF extension holds."""
    return np.frombuffer(payload, dtype=[("ASDF_METADATA", np.uint8, (len(payload),))])


def _set_header(header, entries, meta):
    for dotted, keyword in entries:
        value = _fits_value(get_meta(meta, dotted))
        if value is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # long strings become CONTINUE cards
                header[keyword] = value


def _layout(product, filename):
    """The HDUs of a product: the primary and image HDUs (astropy, which makes their
    headers), the tables as (EXTNAME, records) and the ASDF payload. Stamps ``meta``
    with the file name and the write time."""
    model_type = product.model_type
    meta = product.meta
    meta["model_type"] = model_type
    meta["filename"] = filename
    meta.setdefault("telescope", "JWST")
    meta["date"] = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]

    keywords = datamodels.keywords_by_hdu(model_type)
    arrays = datamodels.array_hdus(model_type)
    tables = datamodels.table_hdus(model_type)
    unknown = set(product._arrays) - set(arrays)
    if unknown:
        raise ValueError(f"{model_type} has no array(s) {sorted(unknown)}")

    primary = fits.PrimaryHDU()
    _set_header(primary.header, keywords.get("PRIMARY", []), meta)
    hdus = [primary]
    # SCI first: the one ordering guarantee the JWST products make
    order = sorted(product._arrays, key=lambda name: name != "data")
    for name in order:
        array = product._arrays[name]
        extname, dtype, ndim = arrays[name]
        if dtype is not None and array.dtype != np.dtype(dtype):
            raise ValueError(f"{model_type}.{name} must be {dtype}, got {array.dtype}")
        if ndim is not None and array.ndim != ndim:
            raise ValueError(f"{model_type}.{name} must be {ndim}-D, got shape {array.shape}")
        hdu = fits.ImageHDU(np.ascontiguousarray(array), name=extname)
        _set_header(hdu.header, keywords.get(extname, []), meta)
        hdus.append(hdu)
    table_records = [(tables[name], np.asarray(table)) for name, table in product.tables.items()]
    tree = {"meta": _plain(meta)}
    tree.update(product.extra_tree)
    return hdus, table_records, _asdf_payload(tree)


def build_hdulist(product, filename):
    hdus, tables, payload = _layout(product, filename)
    return _astropy_hdulist(hdus, tables, payload)


def _astropy_hdulist(hdus, tables, payload):
    data = np.frombuffer(payload, dtype=np.uint8)[None, :]
    column = fits.Column(name="ASDF_METADATA", format=f"{data.shape[1]}B", array=data)
    tail = [fits.BinTableHDU(records, name=extname) for extname, records in tables]
    tail.append(fits.BinTableHDU.from_columns([column], name=_ASDF_EXTNAME))
    return fits.HDUList(list(hdus) + tail)


_VERIFYING = threading.Lock()


def write_product(path, product):
    """Write atomically: a temporary file in the target directory, then a rename.

    A job that dies mid-write leaves at most a ``.tmp`` file, never a truncated
    product under the real name.
    """
    path = Path(path)
    hdus, tables, payload = _layout(product, path.name)
    images = fits.HDUList(hdus)
    # the warnings filters are global: one product's change at a time (write_products)
    with _VERIFYING, warnings.catch_warnings():
        warnings.simplefilter("ignore", fits.verify.VerifyWarning)
        images.verify(option="exception")
    blocks = _direct_blocks(images, tables + [(_ASDF_EXTNAME, _asdf_record(payload))])
    if blocks is None:
        atomic_hdulist_write(path, _astropy_hdulist(hdus, tables, payload))
    else:
        _atomic_write(path, lambda handle: _write_blocks(handle, blocks))
    return path


def write_products(pairs):
    """:func:`write_product` of each ``(path, product)``, the products side by side in
    threads: most of a write is encoding big arrays and waiting on the disk, both
    without the GIL (a stage-1 rate and rateints: 0.13 s one after the other)."""
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

    pairs = list(pairs)
    if len(pairs) < 2:
        return [write_product(path, product) for path, product in pairs]
    with ThreadPoolExecutor(max_workers=len(pairs), thread_name_prefix="write") as pool:
        futures = [pool.submit(write_product, path, product) for path, product in pairs]
        return [future.result() for future in futures]


def _temporary_beside(path, direct=False):
    """A new temporary file next to ``path``: (fd, its path, whether O_DIRECT took). Made
    with the permissions the umask allows, as a plain ``open`` would (``mkstemp``'s 0600
    would leave products unreadable to the rest of a group)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    while True:
        tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            if direct:
                fd, took = open_direct(tmp, flags)
            else:
                fd, took = os.open(tmp, flags, 0o666), False
            return fd, tmp, took
        except FileExistsError:
            continue


def atomic_hdulist_write(path, hdulist):
    fd, tmp, _ = _temporary_beside(path)
    os.close(fd)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", fits.verify.VerifyWarning)
            hdulist.writeto(tmp, overwrite=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _atomic_write(path, write):
    """``write(sink)`` into a temporary file written with O_DIRECT where possible
    (:mod:`webbflow.io.direct`), renamed to ``path`` once complete."""
    fd, tmp, direct = _temporary_beside(path, direct=True)
    try:
        try:
            sink = DirectWriter(fd, direct)
            write(sink)
            sink.close()
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------- direct writing
#
# astropy writes a little-endian image by byte-swapping the whole array in place, writing
# it and swapping it back, and an unsigned one through two converted copies of it; making
# a table HDU imports astropy.table (~0.28 s per process). Products are written here
# instead: the headers astropy makes for the HDUs (tables' built the way astropy builds
# them), the data converted to FITS big-endian a few rows at a time through one small
# buffer. Anything outside the layouts below is written by astropy, as before; tests
# compare the two byte for byte.

_BLOCK = 2880
_CHUNK_BYTES = 1 << 20
# numpy kind+size -> FITS binary-table format code, for the column types written directly
_TFORM = {"i2": "I", "i4": "J", "i8": "K", "f4": "E", "f8": "D", "u1": "B"}
_IMAGE_TYPES = {"f4", "f8", "i2", "i4", "i8", "u1", "u2", "u4", "u8"}


def _type_code(dtype):
    return f"{dtype.kind}{dtype.itemsize}"


def _direct_blocks(images, tables):
    """[(header bytes, array, sign-bit mask or None)] for every HDU, or None when one of
    them needs astropy's own writer."""
    for hdu in images:
        if hdu.data is not None and (_type_code(hdu.data.dtype) not in _IMAGE_TYPES
                                     or hdu.data.size == 0):
            return None
    table_headers = [_table_header(extname, records, tdim=extname != _ASDF_EXTNAME)
                     for extname, records in tables]
    if any(header is None for header in table_headers):
        return None
    # what HDUList.writeto does to the headers before writing them
    images.update_extend()
    blocks = []
    for hdu in images:
        data = hdu.data
        hdu._output_checksum = False
        hdu._prewriteto()
        header = hdu.header
        mask = None
        if data is not None:
            unsigned = data.dtype.kind == "u" and data.itemsize > 1
            bzero = 1 << (8 * data.itemsize - 1) if unsigned else 0
            if header.get("BZERO", 0) != bzero or header.get("BSCALE", 1) != 1:
                return None
            mask = bzero or None
        blocks.append((header.tostring().encode("ascii"), data, mask))
    blocks.extend((header, records, None)
                  for header, (_extname, records) in zip(table_headers, tables))
    return blocks


def _table_header(extname, records, tdim=True):
    """The header astropy gives ``BinTableHDU(records, name=extname)``, for packed
    records of plain numeric fields (and 1-D subarray fields of them); else None.
    ``tdim=False``: as ``BinTableHDU.from_columns`` gives it for 2-D column arrays (the
    ASDF extension), without TDIM cards."""
    dtype = records.dtype
    if records.ndim != 1 or dtype.names is None:
        return None
    offset = 0
    forms = []
    for name in dtype.names:
        field, field_offset = dtype.fields[name][:2]
        base, shape = field.base, field.shape
        code = _TFORM.get(_type_code(base))
        if code is None or field_offset != offset or len(shape) > 1:
            return None
        forms.append((name, f"{shape[0]}{code}" if shape else code,
                      f"({shape[0]})" if shape and tdim else None))
        offset += field.itemsize
    if offset != dtype.itemsize:
        return None
    header = fits.Header()
    header.append(("XTENSION", "BINTABLE", "binary table extension"))
    header.append(("BITPIX", 8, "array data type"))
    header.append(("NAXIS", 2, "number of array dimensions"))
    header.append(("NAXIS1", dtype.itemsize, "length of dimension 1"))
    header.append(("NAXIS2", len(records), "length of dimension 2"))
    header.append(("PCOUNT", 0, "number of group parameters"))
    header.append(("GCOUNT", 1, "number of groups"))
    header.append(("TFIELDS", len(forms), "number of table fields"))
    for index, (name, form, dims) in enumerate(forms, start=1):
        header.append((f"TTYPE{index}", name))
        header.append((f"TFORM{index}", form))
        if dims:
            header.append((f"TDIM{index}", dims))
    header.append(("EXTNAME", extname, "extension name"))
    return header.tostring().encode("ascii")


def _big_endian(dtype):
    if dtype.names is None:
        return dtype.newbyteorder(">")
    return np.dtype([(name, _big_endian(dtype.fields[name][0].base), dtype.fields[name][0].shape)
                     for name in dtype.names])


def _write_blocks(handle, blocks):
    for header, data, mask in blocks:
        handle.write(header)
        if data is None:
            continue
        if data.dtype.names is not None:
            raw = data.astype(_big_endian(data.dtype)).tobytes()
            handle.write(raw)
            size = len(raw)
        else:
            size = _write_image_data(handle, data, mask)
        if size % _BLOCK:
            handle.write(bytes(_BLOCK - size % _BLOCK))


def _write_image_data(handle, data, mask):
    """``data`` as FITS stores it (big-endian; unsigned with the sign bit flipped, i.e.
    minus BZERO), converted through one buffer of ~1 MB."""
    flat = data.reshape(-1)
    stored = _big_endian(data.dtype)
    step = max(1, _CHUNK_BYTES // data.itemsize)
    buffer = np.empty(min(step, flat.size), dtype=stored)
    if mask is not None:
        # the sign bit of each big-endian word, as the native-order integer that has it
        flip = np.array([mask], dtype=stored).view(stored.newbyteorder("="))[0]
        native = buffer.view(stored.newbyteorder("="))
    for start in range(0, flat.size, step):
        chunk = flat[start:start + step]
        out = buffer[:chunk.size]
        out[...] = chunk
        if mask is not None:
            np.bitwise_xor(native[:chunk.size], flip, out=native[:chunk.size])
        handle.write(out.data)
    return flat.size * data.itemsize
