"""Pure functional ops: ``*_forward(...) -> (y, cache)`` and ``*_backward(dy, cache, ...)``.

The bodies here are readable NumPy and are the definition. On NumPy input the ops that have a faster version hand
their work to ``minicnn.fast_cpu`` unless the readable path is chosen: ``minicnn.cpu_path("readable")`` or
``MINICNN_CPU_PATH=readable`` (``ops/dispatch.py``, the one place that decides).

Each works on NumPy or CuPy arrays alike and never writes into ``dy`` or into anything the caller owns.

The input contract, the same on every path (the readable NumPy bodies, the fast CPU path of ``minicnn.fast_cpu``
with its C loops, the CUDA kernels):

* **dtypes.** float32 and float64 are supported. Any other dtype (float16, integers, bool, object) is rejected
  by every op before any path runs, with a ``TypeError`` that names the op and the dtype it got.
* **Empty batches.** N = 0 is valid input for every op and layer: the outputs are empty arrays of the right
  shape and dtype, gradients of parameters are zeros. (A geometry whose *output* would be empty, a kernel larger
  than the padded image, is an error that names the layer.)
* **NaN and inf propagate, never hidden.** A NaN in an input gives NaN in every output that depends on it; max
  pooling outputs NaN for a window that holds one, its switch pointing at the first NaN (as PyTorch).
* **Memory layout.** Non-contiguous and negatively strided arrays are accepted and give the same answer as
  their contiguous copies.
* **Caches.** A backward checks that its cache belongs to ``dy`` (shapes, dtypes, device) before any path
  reads it, and raises ``ValueError``/``TypeError`` naming the op, the expected and the actual value. A cache
  holds what the backward needs: overwriting the forward's input afterwards changes no gradient that the
  readable path computes from its own cache (conv; relu, LRN and linear keep the input itself on every path).
* Any input that the readable op accepts, every path accepts with the same answer; any that it rejects, every
  path rejects with the same error (tests/test_paths_fuzz.py drives every op through every path).
"""
from .activation import RELU_RULES, log_softmax, relu_backward, relu_forward, softmax
from .conv import (col2im, conv2d_backward, conv2d_backward_naive, conv2d_forward, conv2d_forward_naive,
                   conv_output_shape, im2col, linear_backward, linear_forward)
from .dropout import dropout_backward, dropout_forward
from .loss import softmax_cross_entropy
from .normalization import (batch_norm_backward, batch_norm_forward, lrn_alpha_from_torch, lrn_backward,
                            lrn_forward)
from .normalization import (instance_norm_backward, instance_norm_forward, layer_norm_backward,
                            layer_norm_forward)
from .pool import (avg_pool2d_backward, avg_pool2d_forward, max_pool2d_backward, max_pool2d_forward,
                   pool_output_shape, unpool2d)

__all__ = [
    "RELU_RULES", "relu_forward", "relu_backward", "softmax", "log_softmax",
    "im2col", "col2im", "conv_output_shape", "conv2d_forward", "conv2d_backward",
    "conv2d_forward_naive", "conv2d_backward_naive", "linear_forward", "linear_backward",
    "dropout_forward", "dropout_backward", "softmax_cross_entropy",
    "lrn_forward", "lrn_backward", "lrn_alpha_from_torch", "batch_norm_forward", "batch_norm_backward",
    "max_pool2d_forward", "max_pool2d_backward", "unpool2d", "avg_pool2d_forward", "avg_pool2d_backward",
    "pool_output_shape",
    "layer_norm_forward", "layer_norm_backward", "instance_norm_forward", "instance_norm_backward",
]
