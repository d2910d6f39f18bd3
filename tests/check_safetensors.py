"""Reads a model file written by pquant with the Python safetensors library and writes one back.

Usage: check_safetensors.py IN OUT. Checks IN's tensors and metadata, then writes OUT with safetensors'
own writer (tensors doubled, the graph kept) for pquant to read back."""
import json
import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file, save_file


def main(src, dst):
    tensors = load_file(src)
    with safe_open(src, "np") as f:
        meta = f.metadata()
    assert meta["pquant.format_version"] == "1", meta
    graph = json.loads(meta["pquant.graph"])
    assert graph["outputs"] == ["y"], graph
    packed = json.loads(meta["pquant.packed"])
    assert packed["q"]["bits"] == 5 and packed["q"]["scheme"] == "per_channel", packed
    assert tensors["ramp"].dtype == np.float32 and tensors["ramp"].shape == (3, 4)
    assert np.array_equal(tensors["ramp"], np.arange(12, dtype=np.float32).reshape(3, 4) - 5.5)
    assert tensors["half"].dtype == np.float16
    assert np.array_equal(tensors["half"], np.array([0.5, -2.0], dtype=np.float16))
    assert tensors["count"].dtype == np.int32 and list(tensors["count"]) == [7, 8, 9]
    q = tensors["q"]
    assert q.dtype == np.uint8 and q.shape == (2, 5), q.shape  # 8 values x 5 bits = 5 bytes a row
    bits = np.unpackbits(q, axis=1, bitorder="little")[:, :40].reshape(2, 8, 5)
    codes = (bits * (1 << np.arange(5))).sum(axis=2)
    assert np.array_equal(codes, np.arange(16).reshape(2, 8) + 3), codes
    assert np.allclose(tensors["q.scales"], [0.25, 0.5])
    # 8-bit codes with F16 scales: value = scale * (code - 128), as numpy computes it from the stored bytes
    assert packed["q16"]["bits"] == 8 and packed["q16"]["scales"] == "q16.scales", packed
    s16 = tensors["q16.scales"]
    assert s16.dtype == np.float16 and list(s16) == [0.125, 3.0], s16
    values = s16.astype(np.float32)[:, None] * (tensors["q16"].astype(np.float32) - 128)
    assert np.array_equal(values[0], 0.125 * (np.arange(8) - 8)) and np.array_equal(values[1], 3.0 * np.arange(8)), values
    # 4-bit codes in groups of 4 whose scales are packed themselves (8-bit codes, a float32 scale and a zero point
    # a row of scales): the values pquant read from them, computed again from the bytes
    assert packed["q8"]["scales"] == "q8.scales" and packed["q8.scales"]["bits"] == 8, packed
    sp = packed["q8.scales"]
    s_codes = tensors[packed["q8"]["scales"]]
    scales = tensors[sp["scales"]][:, None] * (s_codes.astype(np.float32) - tensors[sp["zeros"]][:, None].astype(np.float32))
    nib = np.unpackbits(tensors["q8"], axis=1, bitorder="little").reshape(3, 8, 4)
    codes8 = (nib * (1 << np.arange(4))).sum(axis=2).astype(np.float32)
    values = np.repeat(scales, 4, axis=1) * (codes8 - 8)
    assert np.allclose(values, tensors["q8_values"], rtol=1e-6, atol=1e-7), (values, tensors["q8_values"])
    out = {k: v * 2 if v.dtype == np.float32 and k not in ("q.scales", "q8.scales.scales", "q8_values") else v for k, v in tensors.items()}
    save_file(out, dst, metadata=meta)
    print("python safetensors: read", len(tensors), "tensors and wrote", dst)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
