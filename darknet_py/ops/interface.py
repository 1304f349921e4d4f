"""The backend interface: every numeric primitive a layer may call, with its types.

`numpy_ops` (a module) and `cupy_ops.CupyOps` (a class) both implement `Backend`;
tests/test_ops_interface.py checks that each defines every method here with the same
parameters and defaults, so the two cannot drift. Arrays are float32 NCHW in the backend's
memory (`Array`: numpy.ndarray or cupy.ndarray); `to_device`/`to_host` cross over.
"""
from typing import Any, Optional, Protocol, Sequence, Tuple

Array = Any   # numpy.ndarray on the CPU, cupy.ndarray on the GPU


class Backend(Protocol):
    name: str    # "numpy" or "cupy"
    xp: Any      # the array module (numpy or cupy), for concatenate and the like

    # -- memory and timing
    def to_device(self, array: Array) -> Array: ...
    def to_host(self, array: Array) -> Any: ...
    def zeros(self, shape: Tuple[int, ...]) -> Array: ...
    def synchronize(self) -> None:
        """Wait for queued work (timings)."""
    def gemm_library(self) -> str:
        """What runs the GEMMs, for bench's report (numpy: OpenBLAS and its kernels)."""
    def peak_device_bytes(self) -> Optional[int]:
        """Device memory held at the peak; None on the CPU."""
    def count_non_finite(self, x: Array) -> int:
        """How many entries are NaN or infinite (one sum when there are none)."""

    # -- convolution
    def im2col(self, x: Array, size: int, stride: int, pad: int, out_h: int,
               out_w: int) -> Array: ...
    def matmul(self, a: Array, b: Array, ordered: bool = False) -> Array:
        """(..., M, K) @ (..., K, N); ordered: darknet's gemm_nn summation order."""
    def col2im_add(self, cols: Array, image: Array, size: int, stride: int, pad: int,
                   out_h: int, out_w: int) -> None: ...
    def conv_backward_gemms(self, delta: Array, cols: Array, filters: Array,
                            weight_updates: Array, input_columns: bool,
                            exact: bool = False) -> Optional[Array]:
        """weight_updates (G, n, k) += delta (B, G, n, hw) . cols (B, G, k, hw)^T, and with
        input_columns W^T . delta (B, G, k, hw); exact: darknet's per-image order."""
    def conv_weight_gradient_add(self, delta: Array, x: Array, weight_updates: Array,
                                 size: int, stride: int, pad: int, groups: int) -> None:
        """weight_updates (G, n, k) += the weight gradient of delta (B, K, out_h, out_w) at
        the layer's input x, the sums in any order (default-mode training)."""
    def fast_conv_adjoint(self, x_shape: Sequence[int], weights_shape: Sequence[int],
                          size: int, stride: int, pad: int, groups: int) -> bool:
        """Whether conv_input_delta_add beats conv_backward_gemms' input columns and
        col2im_add for these shapes (x_shape: the layer's input)."""
    def conv_input_delta_add(self, delta: Array, weights: Array, size: int, stride: int,
                             pad: int, groups: int, input_delta: Array) -> None:
        """input_delta (B, C, H, W) += the convolution's adjoint at delta (B, K, out_h,
        out_w) (col2im of W^T . delta, the sums in any order): default-mode training."""
    def conv2d_inference(self, x: Array, weights: Array, size: int, stride: int, pad: int,
                         groups: int, out_h: int, out_w: int, factor: Optional[Array],
                         shift: Array, activation: str, out: Optional[Array] = None,
                         pool: bool = False) -> Array:
        """A convolutional layer's plain-inference forward: the convolution, then
        y*factor + shift per filter (factor None: + shift) and activate(fast=True), by
        whatever formulation is fastest for the shape (numpy: Winograd or im2col + GEMM);
        may keep data derived from `weights` until forget_conv_weights. out: an array
        of the result's shape the backend may write the result into instead of
        allocating one (it checks that out suits it); the result is returned either way.
        pool: darknet's size=2 stride=2 maxpool of the result instead (B, K,
        ceil(out_h/2), ceil(out_w/2)), the values of maxpool_inference on the result."""
    def conv2d(self, x: Array, weights: Array, size: int, stride: int, pad: int,
               groups: int, out_h: int, out_w: int) -> Array:
        """The convolution alone (no bias, no activation) for default-mode training's
        forward, by the backend's fastest formulation for the shape (the sums in any
        order); may keep data derived from `weights` until sgd_step changes them."""
    def forget_conv_weights(self, weights: Array) -> None:
        """Drop what conv2d_inference derived from `weights` (they are about to change)."""

    # -- normalisation
    def batchnorm_inference(self, x: Array, mean: Array, variance: Array) -> Array: ...
    def batchnorm_fold(self, mean: Array, variance: Array, scales: Array,
                       biases: Array) -> Tuple[Array, Array]: ...
    def batchnorm_statistics(self, x: Array, exact: bool = False) -> Tuple[Array, Array]: ...
    def batchnorm_backward(self, delta: Array, x: Array, mean: Array, variance: Array,
                           scales: Array) -> Array: ...
    def normalize_scale_activate(self, x: Array, mean: Array, variance: Array,
                                 scales: Array, biases: Array, activation: str) -> Array:
        """Training's batch norm with batch statistics, scales, biases and the activation
        (darknet's arithmetic), on a new array; x is kept."""
    def batchnorm_train_backward(self, delta: Array, output: Array, x: Array, mean: Array,
                                 variance: Array, scales: Array, bias_updates: Array,
                                 scale_updates: Array, activation: str,
                                 exact: bool = False) -> Array:
        """The activation's gradient, bias and scale gradients (added in place), batch
        norm's backward; the delta w.r.t. x, possibly in delta's memory. exact: darknet's
        float running sums; otherwise accurate (double) sums."""
    def update_rolling(self, rolling: Array, batch_value: Array) -> None: ...
    def scale_shift(self, x: Array, factor: Array, shift: Array) -> Array: ...
    def scale_shift_activate(self, x: Array, factor: Optional[Array], shift: Array,
                             activation: str) -> Array: ...
    def scale_bias(self, x: Array, scales: Array) -> Array: ...
    def add_bias(self, x: Array, biases: Array) -> Array: ...
    def channel_sums(self, x: Array) -> Array: ...
    def bias_sums(self, x: Array) -> Array: ...

    # -- activations and sums
    def activate(self, x: Array, activation: str, fast: bool = False) -> Array: ...
    def gradient(self, y: Array, activation: str) -> Array: ...
    def logistic(self, x: Array) -> Array: ...
    def sequential_sum(self, x: Array) -> Array: ...

    # -- pooling, reorg
    def maxpool(self, x: Array, size: int, stride: int, pad: int, out_h: int, out_w: int,
                want_indexes: bool = True) -> Tuple[Array, Optional[Array]]:
        """The output and, when wanted (training), the winners' flat input indexes."""
    def maxpool_inference(self, x: Array, size: int, stride: int, pad: int, out_h: int,
                          out_w: int, out: Optional[Array] = None) -> Array:
        """maxpool's values (no indexes), the same bits, by the fastest path; out as in
        conv2d_inference."""
    def maxpool_backward(self, delta: Array, indexes: Array, input_shape: Sequence[int],
                         size: int, stride: int, pad: int) -> Array: ...
    def maxpool_backward_add(self, delta: Array, indexes: Array, input_delta: Array,
                             size: int, stride: int, pad: int) -> None:
        """input_delta[winner] += delta, in place."""
    def avgpool(self, x: Array) -> Array: ...
    def avgpool_backward(self, delta: Array, input_delta: Array) -> None: ...
    def reorg(self, x: Array, stride: int, forward: bool) -> Array: ...

    # -- softmax and the region layer
    def softmax_groups(self, x: Array, offsets: Sequence[int], temperature: float = 1.0,
                       gpu: bool = False) -> Array: ...
    def softmax_cross_entropy(self, truth: Array, output: Array,
                              masked: bool) -> Tuple[Array, float]: ...
    def region_activate(self, x: Array, anchors: int, entries: int, coords: int,
                        classes: int, background: int, softmax: int,
                        tree_offsets: Optional[Sequence[int]] = None,
                        fast: bool = False) -> Array: ...

    # -- training
    def dropout_mask(self, rand: Array, probability: float, scale: float) -> Array: ...
    def sgd_step(self, param: Array, update: Array, rate: float, momentum: float,
                 decay_term: Optional[float] = None) -> None: ...


def backend_methods():
    """The names of Backend's methods (the parity test walks them)."""
    return [name for name, value in vars(Backend).items()
            if callable(value) and not name.startswith("_")]
