"""Writes the tiny torch.save fixtures that tests/test_weights_torch_file.py reads on machines without PyTorch.

Run from the repository root with PyTorch installed:  python tests/data/make_torch_fixtures.py
The tensors are given by formulas (``fixture_tensors`` in the test repeats them), so the test can check every
value; they cover the cases a state-dict reader must get right: contiguous and transposed (strided) tensors,
two tensors that share one storage at different offsets and strides, float16, bfloat16, int64 and bool.
"""
import collections
import os

import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def tensors():
    base = torch.arange(10, dtype=torch.float64) / 4
    return collections.OrderedDict([
        ("conv.weight", torch.arange(24, dtype=torch.float32).reshape(2, 3, 2, 2) / 4 - 1),
        ("fc.weight", (torch.arange(12, dtype=torch.float32).reshape(3, 4) / 8).t()),      # strided view
        ("shared.offset", base[2:7]),                                                       # same storage
        ("shared.strided", base[1::3]),
        ("half", torch.arange(4, dtype=torch.float16) / 8),
        ("bfloat16", torch.tensor([1.5, -2.25, 3.0], dtype=torch.bfloat16)),
        ("steps", torch.arange(5, dtype=torch.int64) - 2),
        ("flags", torch.tensor([True, False, True])),
    ])


if __name__ == "__main__":
    torch.save(tensors(), os.path.join(HERE, "torch_state_dict_tiny.pth"))
    torch.save(tensors(), os.path.join(HERE, "torch_state_dict_tiny_legacy.pth"), _use_new_zipfile_serialization=False)
