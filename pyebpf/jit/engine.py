"""LLVM through llvmlite: IR text to native code, shared by identical programs and
freed when none uses it, and the background thread that compiles programs that tier
up."""
from __future__ import annotations

import atexit
import hashlib
import queue
import threading
import weakref

import llvmlite.binding as llvm

from .. import _core, isa
from ..verifier.globalfuncs import exception_cb_pc
from . import codegen

_lock = threading.Lock()
_ready = False
# program hash -> its code, while some program uses it
_cache: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
_live: dict = {}                 # unit key -> (engine, context)
_dead: list = []                 # those of units no program uses, freed under _lock
_ABI = _core._jit_abi()
_PROG_ARRAY = isa.MapType.BPF_MAP_TYPE_PROG_ARRAY


class _Unit:
    """One LLVM module's context and engine, and the native code it holds.  When the
    last :class:`Code` compiled in it goes, all of it is freed (a context of its own:
    LLVM keeps every constant a context ever made until the context goes)."""

    __slots__ = ("key", "__weakref__")

    def __init__(self, context, engine):
        # the engine and context are held here, not by the unit: a unit the garbage
        # collector finds in a cycle (a program and its program array) would have
        # them finalized in any order, the context before the engine that uses it
        self.key = id(self)
        _live[self.key] = (engine, context)

    def __del__(self):
        if _dead is None:
            return      # interpreter shutdown: the module's state, LLVM's with it, is gone
        # LLVM is not thread-safe here: free under the lock, now if it is free, else
        # at the next compile (a unit can die inside compile_codes itself)
        _dead.append(_live.pop(self.key))
        if _lock.acquire(blocking=False):
            try:
                _free_dead()
            finally:
                _lock.release()


class Code:
    """Native code of one program: ``entry`` is ``void f(Vm*)``, valid while this
    object lives (programs running it hold it)."""

    __slots__ = ("unit", "entry", "__weakref__")

    def __init__(self, unit: _Unit, entry: int):
        self.unit, self.entry = unit, entry


def _free_dead():
    while _dead:
        engine, context = _dead.pop()
        engine.close()          # the engine owns the module, which lives in the context
        context.close()


def _setup():
    global _ready
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    # loop strength reduction rewrites a loop's packet pointer and its region check
    # into several induction variables with three-part addresses: on csum_loop that
    # was 25 % slower than the plain code (bench/README.md, issue 14)
    llvm.set_option("", "-disable-lsr")
    _ready = True


def _target_machine():
    # each engine owns its target machine (LLVM's EngineBuilder takes it)
    return llvm.Target.from_default_triple().create_target_machine(
        opt=2, codemodel="jitdefault")


def source(program) -> tuple[bytes, int, frozenset]:
    """What ``program``'s native code is made of: its decoded instructions, its
    exception callback's first pc (0: none), where the code has an entry too, and the
    loads and stores the verifier proved inside the packet (no region check there)."""
    return program._jit_code(), exception_cb_pc(program.functions), program._packet_pcs


def compile_codes(codes: list[tuple[bytes, int, frozenset]]) -> list[Code]:
    """The native code of each (decoded program, exception callback pc, packet
    accesses) in ``codes`` (:func:`source`): taken from the cache, or compiled (those
    not in it together, as one module).  The code is freed when no program holds its
    :class:`Code` any more."""
    keys = [hashlib.blake2b(code + exception_cb.to_bytes(4, "little")
                            + b"".join(pc.to_bytes(4, "little") for pc in sorted(packet)),
                            digest_size=16).digest() for code, exception_cb, packet in codes]
    with _lock:
        _free_dead()
        found = {key: _cache.get(key) for key in keys}
        todo = {}
        for key, code in zip(keys, codes):
            if found[key] is None and key not in todo:
                todo[key] = (f"pyebpf_jit_{len(todo)}", code)
        if todo:
            if not _ready:
                _setup()
            target = _target_machine()
            text = codegen.module([codegen.translate(code, _ABI, name, exception_cb, packet)
                                   for name, (code, exception_cb, packet) in todo.values()],
                                  _ABI)
            context = llvm.create_context()
            mod = llvm.parse_assembly(text, context=context)
            mod.verify()
            _optimize(mod, target)
            engine = llvm.create_mcjit_compiler(mod, target)
            engine.finalize_object()
            unit = _Unit(context, engine)
            for key, (name, _) in todo.items():
                found[key] = _cache[key] = Code(unit, engine.get_function_address(name))
        return [found[key] for key in keys]


def _optimize(mod, target):
    pto = llvm.create_pipeline_tuning_options(speed_level=2)
    pb = llvm.create_pass_builder(target, pto)
    pb.getModulePassManager().run(mod, pb)


def install(*programs) -> None:
    """Compile ``programs`` now, and the programs they can tail-call, and have their
    plain runs start in the native code."""
    programs = _with_tail_call_targets(programs)
    for program, code in zip(programs, compile_codes([source(p) for p in programs])):
        program._jit_install(code.entry, code)


def _with_tail_call_targets(programs) -> list:
    """``programs`` and, transitively, the programs in their program arrays that are
    not compiled yet (a tail call runs its target's code: vm_run)."""
    out, seen, todo = [], set(), list(programs)
    while todo:
        program = todo.pop(0)
        if id(program) in seen:
            continue
        seen.add(id(program))
        out.append(program)
        for m in program.maps:
            if m.type == _PROG_ARRAY:
                todo.extend(p for p in m._programs.values() if not p._jit_done)
    return out


# --- tiering: programs compiled on a background thread while they keep running ---

_queue: queue.SimpleQueue = queue.SimpleQueue()
_worker: threading.Thread | None = None


def _work():
    while True:
        item = _queue.get()
        if item is None:
            return
        if isinstance(item, threading.Event):
            item.set()
            continue
        program = item()
        if program is not None:
            install(program)
            del program


def enqueue(program) -> None:
    """Compile ``program`` on the background thread; runs switch over once it is done
    (llvmlite releases the GIL while LLVM works)."""
    global _worker
    with _lock:
        if _worker is None:
            _worker = threading.Thread(target=_work, name="pyebpf-jit", daemon=True)
            _worker.start()
            atexit.register(_stop)
    _queue.put(weakref.ref(program))


def wait() -> None:
    """Block until every compile queued so far is done."""
    if _worker is None:
        return
    done = threading.Event()
    _queue.put(done)
    done.wait()


def _stop():
    # LLVM must not be mid-compile while the interpreter tears down
    _queue.put(None)
    if _worker is not None:
        _worker.join()
