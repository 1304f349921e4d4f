"""Sixteen-float vectors for numba kernels: a type and the few operations a register-blocked
convolution needs (blocked_conv.py), each lowered to one LLVM vector instruction.

Why not leave it to LLVM's loop vectoriser: it vectorises an innermost loop, but the
accumulators of a blocked convolution (24 vectors, kept in registers across the whole
reduction over channels and taps) are not a loop it can see; a loop written over a small
accumulator array left them in memory. And LLVM's tuning for this project's CPUs (Intel
with AVX-512) prefers 256-bit vectors, which halves the multiply-adds per instruction.

Every function that uses one of these operations is marked with LLVM's
"prefer-vector-width" and "min-legal-vector-width" of 512 bits, so that the vectors stay
whole zmm registers there (other kernels keep LLVM's 256-bit preference: 512-bit vectors
everywhere made the forward slower). On a CPU without AVX-512 the same code is correct,
LLVM splitting each vector in two: `wide_vectors()` tells the callers whether the kernels
are worth taking. A kernel ends with `vclean()`, which leaves no 512-bit register dirty
for the code that runs after it.

Importing this module imports numba (callers import it lazily, once numba is known to be
there)."""
import functools

import llvmlite.ir as ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

from ..settings import import_numba

LANES = 16
_VECTOR = ir.VectorType(ir.FloatType(), LANES)
_INDEX32 = ir.IntType(32)


class Float32x16(types.Type):
    """numba's type for a value held in one 512-bit register."""

    def __init__(self):
        super().__init__(name="float32x16")


float32x16 = Float32x16()


@register_model(Float32x16)
class _Float32x16Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _VECTOR)


@functools.lru_cache(maxsize=None)
def wide_vectors():
    """Whether the machine code numba makes here has 512-bit vector registers (AVX-512F):
    the host's CPU, unless NUMBA_CPU_NAME or NUMBA_CPU_FEATURES name another target."""
    numba = import_numba()
    if numba.config.CPU_FEATURES:
        return "+avx512f" in numba.config.CPU_FEATURES.split(",")
    if numba.config.CPU_NAME and numba.config.CPU_NAME != "host":
        return False
    import llvmlite.binding
    return bool(llvmlite.binding.get_host_cpu_features().get("avx512f", False))


def _mark_wide(builder):
    """Let the function being built keep 512-bit vectors whole (see the module's note).
    llvmlite's attribute set knows only LLVM's named attributes; these are string
    attributes, added to the set as they are printed in the IR."""
    attributes = builder.function.attributes
    set.add(attributes, '"prefer-vector-width"="512"')
    set.add(attributes, '"min-legal-vector-width"="512"')


def _is_float32_vector_array(array):
    return isinstance(array, types.Array) and array.ndim == 1 and \
        array.dtype == types.float32 and array.layout == "C"


def _element_pointer(context, builder, array_type, array, index):
    data = context.make_array(array_type)(context, builder, array).data
    return builder.gep(data, [index])


def _splat(builder, scalar):
    single = builder.insert_element(ir.Constant(_VECTOR, ir.Undefined), scalar,
                                    ir.Constant(_INDEX32, 0))
    return builder.shuffle_vector(single, ir.Constant(_VECTOR, ir.Undefined),
                                  ir.Constant(ir.VectorType(_INDEX32, LANES), [0] * LANES))


@intrinsic
def vzero(typingctx):
    """Sixteen zeros."""
    def codegen(context, builder, signature, args):
        _mark_wide(builder)
        return ir.Constant(_VECTOR, [0.0] * LANES)
    return float32x16(), codegen


@intrinsic
def vload(typingctx, array, index):
    """array[index:index + 16] of a contiguous 1-D float32 array (no bounds check, any
    alignment)."""
    if not (_is_float32_vector_array(array) and isinstance(index, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        _mark_wide(builder)
        pointer = _element_pointer(context, builder, signature.args[0], args[0], args[1])
        return builder.load(builder.bitcast(pointer, _VECTOR.as_pointer()), align=4)
    return float32x16(array, index), codegen


@intrinsic
def vstore(typingctx, array, index, value):
    """array[index:index + 16] = value (no bounds check, any alignment)."""
    if not (_is_float32_vector_array(array) and isinstance(index, types.Integer) and
            value == float32x16):
        return None

    def codegen(context, builder, signature, args):
        _mark_wide(builder)
        pointer = _element_pointer(context, builder, signature.args[0], args[0], args[1])
        builder.store(args[2], builder.bitcast(pointer, _VECTOR.as_pointer()), align=4)
        return context.get_dummy_value()
    return types.void(array, index, value), codegen


@intrinsic
def vbroadcast(typingctx, array, index):
    """array[index] in all sixteen lanes (one broadcast load, or the operand of the
    multiply-add that uses it)."""
    if not (_is_float32_vector_array(array) and isinstance(index, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        _mark_wide(builder)
        pointer = _element_pointer(context, builder, signature.args[0], args[0], args[1])
        return _splat(builder, builder.load(pointer, align=4))
    return float32x16(array, index), codegen


@intrinsic
def vfma(typingctx, a, b, c):
    """a*b + c in each lane, rounded once (LLVM's llvm.fma)."""
    if not (a == b == c == float32x16):
        return None

    def codegen(context, builder, signature, args):
        _mark_wide(builder)
        fma = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(_VECTOR, [_VECTOR] * 3), "llvm.fma.v16f32")
        return builder.call(fma, args)
    return float32x16(a, b, c), codegen


@intrinsic
def vclean(typingctx):
    """Zero the upper bits of every vector register: zmm16-31 one by one (vzeroupper does
    not reach them), then vzeroupper for zmm0-15. The blocked kernel calls it before it
    returns. Without it, the layers after a 512-bit first layer ran slower in the same
    process (yolov2-voc's later layers by 3-15%, its forward 3-10% in three alternating
    pairs of processes; up to 2x on its 1x1 layers in one in-process comparison). The
    likely cause: a core keeps its 512-bit state (clock, shut vector port) while an upper
    half is dirty. A one-thread micro-benchmark did not show the effect, so this is not
    pinned down. Does nothing on a CPU without AVX-512, which has no zmm16-31."""
    def codegen(context, builder, signature, args):
        if wide_vectors():
            # LLVM assembles inline asm itself, with the parser numba does not load
            import llvmlite.binding
            llvmlite.binding.initialize_native_asmparser()
            zeroing = "\n".join(f"vpxord %zmm{r}, %zmm{r}, %zmm{r}" for r in range(16, 32))
            clobbers = ",".join(f"~{{xmm{r}}}" for r in range(16, 32))
            builder.asm(ir.FunctionType(ir.VoidType(), []), zeroing + "\nvzeroupper", clobbers,
                        [], side_effect=True)
        return context.get_dummy_value()
    return types.void(), codegen

