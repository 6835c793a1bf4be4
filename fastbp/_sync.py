"""What two threads running one epoch (``_threads``) meet at: atomics, a yield and a
spin barrier, over the ``Team``'s ``sync`` counters.

``barrier`` uses release/acquire atomics, about 0.1 µs when both threads run; after
``SPINS_BEFORE_YIELD`` spins the waiter yields its core, so a loaded machine slows a fit
down but does not stall it.
"""

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from ._config import JIT

SPINS_BEFORE_YIELD = 1 << 14

# Slots of Team.sync (int64) and Team.shared (float64), 64 bytes apart: no false sharing.
PHASE = (0, 8)  # each thread's last phase reached
ABORT = 16  # set when a thread failed: the other leaves at its next barrier
PENALTY = (0, 8)  # each thread's share of ‖W‖² (shared)


@intrinsic
def _load_acquire(typingctx, arr, idx):
    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, sig.args[0], ary, [args[1]])
        return builder.load_atomic(ptr, "acquire", 8)

    return types.int64(arr, idx), codegen


@intrinsic
def _store_release(typingctx, arr, idx, val):
    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, sig.args[0], ary, [args[1]])
        builder.store_atomic(args[2], ptr, "release", 8)
        return context.get_dummy_value()

    return types.void(arr, idx, val), codegen


@intrinsic
def _sched_yield(typingctx):
    def codegen(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.IntType(32), []), "sched_yield")
        builder.call(fn, [])
        return context.get_dummy_value()

    return types.void(), codegen


@njit(**JIT)
def barrier(sync, tid, phase):
    """Publish that thread ``tid`` reached ``phase``; wait until the other thread has.
    Everything either thread wrote before its call is visible to both after it. Returns
    False, at once, if the run was aborted (the other thread failed)."""
    _store_release(sync, PHASE[tid], phase)
    other = PHASE[1 - tid]
    spins = 0
    while _load_acquire(sync, other) < phase:
        if _load_acquire(sync, ABORT) != 0:
            return False
        spins += 1
        if spins >= SPINS_BEFORE_YIELD:
            _sched_yield()
    return True
