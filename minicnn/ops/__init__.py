"""Pure functional ops: ``*_forward(...) -> (y, cache)`` and ``*_backward(dy, cache, ...)``.

Each works on NumPy or CuPy arrays alike and never writes into ``dy`` or into anything the caller owns.
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
