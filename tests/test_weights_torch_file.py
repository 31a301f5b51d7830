"""The torch.save reader without PyTorch: the committed fixtures, hostile pickles, broken files, other formats.

Nothing here imports torch: this is what runs on CI's fresh venv. tests/data/make_torch_fixtures.py wrote the
fixtures; ``fixture_tensors`` repeats its formulas in NumPy.
"""
import os
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from minicnn.weights import TorchFileError, UnsafePickleError, read_state_dict, read_torch_file

DATA = Path(__file__).parent / "data"


def fixture_tensors():
    base = np.arange(10, dtype=np.float64) / 4
    return {
        "conv.weight": (np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2) / 4 - 1).astype(np.float32),
        "fc.weight": (np.arange(12, dtype=np.float32).reshape(3, 4) / 8).T,
        "shared.offset": base[2:7],
        "shared.strided": base[1::3],
        "half": (np.arange(4, dtype=np.float16) / np.float16(8)),
        "bfloat16": np.array([1.5, -2.25, 3.0], dtype=np.float32),
        "steps": np.arange(5, dtype=np.int64) - 2,
        "flags": np.array([True, False, True]),
    }


@pytest.mark.parametrize("name", ["torch_state_dict_tiny.pth", "torch_state_dict_tiny_legacy.pth"])
def test_reads_the_committed_fixtures(name):
    state = read_state_dict(DATA / name)
    expected = fixture_tensors()
    assert list(state) == list(expected)                      # the OrderedDict's order is kept
    for key, want in expected.items():
        got = state[key]
        assert got.dtype == want.dtype, key
        assert got.shape == want.shape, key
        np.testing.assert_array_equal(got, want, err_msg=key)
        assert got.flags.c_contiguous and got.flags.writeable, key   # copies, not views of the file's bytes


# --- hostile and broken files --------------------------------------------------------------------------------

class _RunsCode:
    """Unpickling this calls os.system: what a malicious .pth does."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _zip_with_pickle(path, payload, extra=()):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", payload)
        zf.writestr("archive/byteorder", "little")
        zf.writestr("archive/version", "3\n")
        for name, data in extra:
            zf.writestr(name, data)
    return path


def test_a_pickle_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    evil = {"conv.weight": _RunsCode(marker)}
    path = _zip_with_pickle(tmp_path / "evil.pth", pickle.dumps(evil, protocol=2))
    with pytest.raises(UnsafePickleError, match=r"refusing to load (posix|nt|os)\.system"):
        read_state_dict(path)
    assert not marker.exists()
    # the same payload as a naive pickle.load would run it: proof that the file is really hostile
    pickle.loads(pickle.dumps(evil, protocol=2))
    assert marker.exists()


def test_a_legacy_file_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil_legacy.pth"
    with open(path, "wb") as f:
        pickle.dump(0x1950a86a20f9469cfc6c, f, protocol=2)
        pickle.dump(1001, f, protocol=2)
        pickle.dump({"little_endian": True}, f, protocol=2)
        pickle.dump({"w": _RunsCode(marker)}, f, protocol=2)
    with pytest.raises(UnsafePickleError):
        read_torch_file(path)
    assert not marker.exists()
    # even the magic number is read with the restricted unpickler
    with open(path, "wb") as f:
        pickle.dump(_RunsCode(marker), f, protocol=2)
    with pytest.raises(UnsafePickleError):
        read_torch_file(path)
    assert not marker.exists()


@pytest.mark.parametrize("module,name", [("builtins", "eval"), ("subprocess", "Popen"), ("builtins", "list"),
                                         ("torch", "load"), ("numpy", "load")])
def test_every_other_global_is_refused(tmp_path, module, name):
    payload = b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"."
    path = _zip_with_pickle(tmp_path / "g.pth", payload)
    with pytest.raises(UnsafePickleError, match=f"{module}.{name}"):
        read_torch_file(path)


# A hand-assembled pickle of {"w": tensor}, the way torch.save lays it out, to reach corner cases without torch.
def _str(s):
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def _int(v):
    return b"J" + struct.pack("<i", v)


def _tup(items):
    return b"(" + b"".join(items) + b"t"


def _tensor_pickle(numel, offset, size, stride, storage="FloatStorage"):
    pid = _tup([_str("storage"), b"ctorch\n" + storage.encode() + b"\n", _str("0"), _str("cpu"), _int(numel)]) + b"Q"
    args = _tup([pid, _int(offset), _tup([_int(s) for s in size]), _tup([_int(s) for s in stride]), b"\x89", b")"])
    return (b"\x80\x02ccollections\nOrderedDict\n)R(" + _str("w") + b"ctorch._utils\n_rebuild_tensor_v2\n"
            + args + b"Ru.")


def test_hand_made_strided_tensor(tmp_path):
    data = np.arange(20, dtype="<f4")
    path = _zip_with_pickle(tmp_path / "t.pth", _tensor_pickle(20, 3, (2, 3), (7, 2)),
                            [("archive/data/0", data.tobytes())])
    w = read_state_dict(path)["w"]
    np.testing.assert_array_equal(w, np.lib.stride_tricks.as_strided(data[3:], (2, 3), (28, 8)))


def test_storage_saved_from_the_gpu(tmp_path):
    data = np.arange(6, dtype="<f4")
    payload = _tensor_pickle(6, 0, (6,), (1,)).replace(b"ctorch\nFloatStorage\n", b"ctorch.cuda\nFloatStorage\n")
    path = _zip_with_pickle(tmp_path / "gpu.pth", payload, [("archive/data/0", data.tobytes())])
    np.testing.assert_array_equal(read_state_dict(path)["w"], data)


def test_big_endian_storage(tmp_path):
    data = np.arange(6, dtype=">f4")
    path = tmp_path / "be.pth"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", _tensor_pickle(6, 0, (2, 3), (3, 1)))
        zf.writestr("archive/byteorder", "big")
        zf.writestr("archive/data/0", data.tobytes())
    np.testing.assert_array_equal(read_state_dict(path)["w"], np.arange(6, dtype=np.float32).reshape(2, 3))


@pytest.mark.parametrize("offset,size,stride", [(0, (4, 6), (6, 1)), (15, (2, 3), (3, 1)), (0, (3,), (10,))])
def test_a_tensor_reaching_outside_its_storage_is_refused(tmp_path, offset, size, stride):
    path = _zip_with_pickle(tmp_path / "oob.pth", _tensor_pickle(20, offset, size, stride),
                            [("archive/data/0", np.zeros(20, "<f4").tobytes())])
    with pytest.raises(TorchFileError, match="reaches element"):
        read_state_dict(path)


def test_missing_or_short_storage(tmp_path):
    path = _zip_with_pickle(tmp_path / "nostorage.pth", _tensor_pickle(20, 0, (20,), (1,)))
    with pytest.raises(TorchFileError, match="archive/data/0"):
        read_state_dict(path)
    path = _zip_with_pickle(tmp_path / "short.pth", _tensor_pickle(20, 0, (20,), (1,)),
                            [("archive/data/0", np.zeros(5, "<f4").tobytes())])
    with pytest.raises(TorchFileError, match="truncated"):
        read_state_dict(path)


def test_truncated_and_foreign_files(tmp_path):
    good = (DATA / "torch_state_dict_tiny_legacy.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(good[:len(good) - 40])
    with pytest.raises(TorchFileError, match="cut.pth"):
        read_state_dict(tmp_path / "cut.pth")
    (tmp_path / "text.pth").write_text("not a state dict")
    with pytest.raises(TorchFileError, match="text.pth"):
        read_state_dict(tmp_path / "text.pth")
    with zipfile.ZipFile(tmp_path / "other.pth", "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(TorchFileError, match="data.pkl"):
        read_state_dict(tmp_path / "other.pth")
    with pytest.raises(FileNotFoundError):
        read_state_dict(tmp_path / "missing.pth")
    (tmp_path / "w.h5").write_bytes(b"x")
    with pytest.raises(TorchFileError, match="unknown extension"):
        read_state_dict(tmp_path / "w.h5")


def test_npz_and_checkpoint_wrappers(tmp_path):
    rng = np.random.default_rng(0)
    state = {"features.0.weight": rng.standard_normal((2, 3), dtype=np.float32), "b": np.arange(3.0)}
    np.savez(tmp_path / "s.npz", **state)
    got = read_state_dict(tmp_path / "s.npz")
    assert set(got) == set(state) and all(np.array_equal(got[k], state[k]) for k in state)
    # {"model": {"module.x": ...}}: a training checkpoint of a DataParallel model
    np.savez(tmp_path / "wrapped.npz", **{f"module.{k}": v for k, v in state.items()})
    assert set(read_state_dict(tmp_path / "wrapped.npz")) == set(state)


def test_safetensors_without_torch(tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    rng = np.random.default_rng(1)
    state = {"features.0.weight": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
             "classifier.6.bias": rng.standard_normal(5).astype(np.float16)}
    safetensors_numpy.save_file(state, str(tmp_path / "model.safetensors"))
    got = read_state_dict(tmp_path / "model.safetensors")
    assert set(got) == set(state)
    for k in state:
        assert got[k].dtype == state[k].dtype
        np.testing.assert_array_equal(got[k], state[k])
    (tmp_path / "broken.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(TorchFileError, match="broken.safetensors"):
        read_state_dict(tmp_path / "broken.safetensors")
