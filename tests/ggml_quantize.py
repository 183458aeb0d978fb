"""ggml_quantize.py DIR: llama.cpp's own q4_K / q6_K quantizers (ggml_quantize_chunk from the libggml-base that
llama-cpp-python ships, called through ctypes, no importance matrix: the reference quantizers) over the rows of
DIR/inputs.f32 (rows of 1536 f32), written as DIR/ggml.q4_K and DIR/ggml.q6_K for tests/test_quant_k --compare."""
import ctypes
import glob
import os
import sys

import llama_cpp

COLS = 1536
TYPES = {"q4_K": (12, 144), "q6_K": (14, 210)}   # ggml_type numbers and bytes per 256-element block

lib_dir = os.path.join(os.path.dirname(llama_cpp.__file__), "lib")
lib = ctypes.CDLL(glob.glob(os.path.join(lib_dir, "libggml-base.so*"))[0])
fn = lib.ggml_quantize_chunk
fn.restype = ctypes.c_size_t
fn.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]

d = sys.argv[1]
raw = open(os.path.join(d, "inputs.f32"), "rb").read()
rows = len(raw) // (4 * COLS)
src = ctypes.create_string_buffer(raw, len(raw))
for name, (t, bb) in TYPES.items():
    size = rows * COLS // 256 * bb
    dst = ctypes.create_string_buffer(size)
    got = fn(t, src, dst, 0, rows, COLS, None)
    if got != size:
        sys.exit(f"ggml_quantize_chunk {name}: wrote {got} bytes, expected {size}")
    open(os.path.join(d, "ggml." + name), "wb").write(dst.raw)
print(f"llama.cpp quantized {rows} rows of {COLS}")
