#!/usr/bin/python3
"""Minimal GGUF reader in numpy, written for hearth's numerical oracles.

Reads the header, the metadata and the tensor table of a GGUF file (versions 2 and 3, little-endian),
and dequantizes tensors of type F32, F16, BF16 and Q8_0 to float64 arrays.

Shapes: GGUF lists dims fastest-varying first, so dims[0] is the contiguous row length. A tensor with
dims [n_embd, n_vocab] comes back as a numpy array of shape (n_vocab, n_embd).

Usage as a library:
    f = GGUFFile("model.gguf")
    f.metadata["llama.embedding_length"]     # -> 256
    f.tensor("token_embd.weight")            # -> float64 array, shape (n_vocab, n_embd)

Usage from the shell (prints the metadata and the tensor table):
    /usr/bin/python3 gguf_np.py model.gguf
"""

import struct
import sys

import numpy as np

GGUF_MAGIC = b"GGUF"

# Metadata value types.
_UINT8, _INT8, _UINT16, _INT16, _UINT32, _INT32, _FLOAT32, _BOOL, _STRING, _ARRAY, _UINT64, _INT64, _FLOAT64 = range(13)
_SCALAR_FORMATS = {
    _UINT8: "<B", _INT8: "<b", _UINT16: "<H", _INT16: "<h", _UINT32: "<I", _INT32: "<i",
    _FLOAT32: "<f", _BOOL: "<?", _UINT64: "<Q", _INT64: "<q", _FLOAT64: "<d",
}
_NUMPY_DTYPES = {
    _UINT8: "<u1", _INT8: "<i1", _UINT16: "<u2", _INT16: "<i2", _UINT32: "<u4", _INT32: "<i4",
    _FLOAT32: "<f4", _BOOL: "?", _UINT64: "<u8", _INT64: "<i8", _FLOAT64: "<f8",
}

# ggml tensor types this reader can dequantize: type id -> (name, elements per block, bytes per block).
GGML_F32, GGML_F16, GGML_Q8_0, GGML_BF16 = 0, 1, 8, 30
_TENSOR_TYPES = {
    GGML_F32: ("F32", 1, 4),
    GGML_F16: ("F16", 1, 2),
    GGML_Q8_0: ("Q8_0", 32, 34),
    GGML_BF16: ("BF16", 1, 2),
}
# Names of the other ggml types, for error messages only.
_OTHER_TYPE_NAMES = {
    2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 9: "Q8_1", 10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K",
    14: "Q6_K", 15: "Q8_K", 16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL",
    21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64", 29: "IQ1_M",
}


def type_name(type_id):
    if type_id in _TENSOR_TYPES:
        return _TENSOR_TYPES[type_id][0]
    return _OTHER_TYPE_NAMES.get(type_id, "type%d" % type_id)


class GGUFError(Exception):
    pass


class TensorInfo:
    def __init__(self, name, dims, type_id, offset):
        self.name = name
        self.dims = dims          # GGUF order: dims[0] is the row length
        self.type_id = type_id
        self.offset = offset      # relative to the start of the data section

    @property
    def shape(self):
        """numpy shape (reversed GGUF dims)."""
        return tuple(reversed(self.dims))

    @property
    def n_elements(self):
        n = 1
        for d in self.dims:
            n *= d
        return n

    def __repr__(self):
        return "TensorInfo(%s, dims=%s, %s)" % (self.name, list(self.dims), type_name(self.type_id))


class _Reader:
    def __init__(self, buf):
        self.buf = buf
        self.pos = 0

    def need(self, n):
        if self.pos + n > len(self.buf):
            raise GGUFError("truncated file: need %d bytes at offset %d, file has %d" % (n, self.pos, len(self.buf)))

    def scalar(self, fmt):
        size = struct.calcsize(fmt)
        self.need(size)
        (v,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return v

    def string(self):
        n = self.scalar("<Q")
        self.need(n)
        raw = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        return raw.decode("utf-8", errors="surrogateescape")

    def value(self, vtype):
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            item_type = self.scalar("<I")
            count = self.scalar("<Q")
            if item_type in _NUMPY_DTYPES:
                dt = np.dtype(_NUMPY_DTYPES[item_type])
                self.need(count * dt.itemsize)
                arr = np.frombuffer(self.buf, dtype=dt, count=count, offset=self.pos).copy()
                self.pos += count * dt.itemsize
                return arr.tolist()
            return [self.value(item_type) for _ in range(count)]
        if vtype in _SCALAR_FORMATS:
            return self.scalar(_SCALAR_FORMATS[vtype])
        raise GGUFError("unknown metadata value type %d at offset %d" % (vtype, self.pos))


class GGUFFile:
    """A parsed GGUF file. `metadata` is a dict of key -> value (arrays as lists), `tensors` a dict of
    name -> TensorInfo in file order."""

    def __init__(self, path):
        self.path = path
        self.buf = np.memmap(path, dtype=np.uint8, mode="r")
        r = _Reader(self.buf)
        r.need(4)
        magic = bytes(self.buf[0:4])
        if magic != GGUF_MAGIC:
            raise GGUFError("%s: not a GGUF file (magic %r)" % (path, magic))
        r.pos = 4
        self.version = r.scalar("<I")
        if self.version not in (2, 3):
            raise GGUFError("%s: unsupported GGUF version %d (need 2 or 3)" % (path, self.version))
        n_tensors = r.scalar("<Q")
        n_kv = r.scalar("<Q")

        self.metadata = {}
        for _ in range(n_kv):
            key = r.string()
            vtype = r.scalar("<I")
            self.metadata[key] = r.value(vtype)

        self.tensors = {}
        for _ in range(n_tensors):
            name = r.string()
            n_dims = r.scalar("<I")
            if n_dims > 4:
                raise GGUFError("tensor %s: %d dims (max 4)" % (name, n_dims))
            dims = tuple(r.scalar("<Q") for _ in range(n_dims))
            type_id = r.scalar("<I")
            offset = r.scalar("<Q")
            if name in self.tensors:
                raise GGUFError("duplicate tensor name %s" % name)
            self.tensors[name] = TensorInfo(name, dims, type_id, offset)

        alignment = self.metadata.get("general.alignment", 32)
        if alignment <= 0 or alignment & (alignment - 1):
            raise GGUFError("general.alignment %d is not a power of two" % alignment)
        self.alignment = alignment
        self.data_offset = (r.pos + alignment - 1) // alignment * alignment

    def get(self, key, default=None):
        return self.metadata.get(key, default)

    def require(self, key):
        """The value of a metadata key the model cannot do without; GGUFError naming it when absent."""
        if key not in self.metadata:
            raise GGUFError("%s: missing metadata key %s" % (self.path, key))
        return self.metadata[key]

    def __contains__(self, tensor_name):
        return tensor_name in self.tensors

    def raw_bytes(self, name):
        info = self.tensors[name]
        if info.type_id not in _TENSOR_TYPES:
            raise GGUFError("tensor %s has type %s; this reader handles F32, F16, BF16 and Q8_0"
                            % (name, type_name(info.type_id)))
        _, block_elems, block_bytes = _TENSOR_TYPES[info.type_id]
        if info.dims and info.dims[0] % block_elems:
            raise GGUFError("tensor %s: row length %d is not a multiple of the %s block size %d"
                            % (name, info.dims[0], type_name(info.type_id), block_elems))
        nbytes = info.n_elements // block_elems * block_bytes
        start = self.data_offset + info.offset
        if start + nbytes > len(self.buf):
            raise GGUFError("tensor %s: data [%d, %d) runs past the end of the file (%d bytes)"
                            % (name, start, start + nbytes, len(self.buf)))
        return np.asarray(self.buf[start:start + nbytes])

    def tensor(self, name):
        """The tensor dequantized to float64, in numpy shape (reversed GGUF dims)."""
        if name not in self.tensors:
            raise GGUFError("no tensor named %s" % name)
        info = self.tensors[name]
        raw = self.raw_bytes(name)
        t = info.type_id
        if t == GGML_F32:
            flat = raw.view("<f4").astype(np.float64)
        elif t == GGML_F16:
            flat = raw.view("<f2").astype(np.float64)
        elif t == GGML_BF16:
            # bf16 is the high half of an f32.
            flat = (raw.view("<u2").astype(np.uint32) << 16).view("<f4").astype(np.float64)
        elif t == GGML_Q8_0:
            blocks = raw.reshape(-1, 34)
            d = blocks[:, 0:2].copy().view("<f2").astype(np.float64)       # (n_blocks, 1)
            q = blocks[:, 2:34].copy().view(np.int8).astype(np.float64)    # (n_blocks, 32)
            flat = (d * q).reshape(-1)
        else:  # raw_bytes already rejected it
            raise GGUFError("unsupported type for %s" % name)
        return flat.reshape(info.shape)


def _main(argv):
    if len(argv) != 2:
        print("usage: gguf_np.py FILE.gguf", file=sys.stderr)
        return 2
    f = GGUFFile(argv[1])
    print("GGUF v%d, %d metadata keys, %d tensors, data at %d" % (f.version, len(f.metadata), len(f.tensors), f.data_offset))
    for k, v in f.metadata.items():
        if isinstance(v, list) and len(v) > 8:
            v = "[%s, ... (%d items)]" % (", ".join(repr(x) for x in v[:4]), len(v))
        print("  %s = %r" % (k, v))
    for info in f.tensors.values():
        print("  %-32s %-6s dims %s" % (info.name, type_name(info.type_id), list(info.dims)))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv))
