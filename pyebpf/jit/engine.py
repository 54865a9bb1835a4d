"""LLVM through llvmlite: IR text to native code, once per distinct program in the
process, and the background thread that compiles programs that tier up."""
from __future__ import annotations

import atexit
import hashlib
import queue
import threading
import weakref

import llvmlite.binding as llvm

from .. import _core
from . import codegen

_lock = threading.Lock()
_engine = None
_target = None
_cache: dict[bytes, int] = {}    # program hash -> entry address (the engine keeps the code)
_ABI = _core._jit_abi()


def _setup():
    global _engine, _target
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    _target = llvm.Target.from_default_triple().create_target_machine(
        opt=2, codemodel="jitdefault")
    _engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), _target)


def compile_codes(codes: list[bytes]) -> list[int]:
    """The entry addresses of ``void f(Vm*)`` for each decoded program in ``codes``
    (those not in the cache compiled as one module); the code lives as long as the
    process."""
    keys = [hashlib.blake2b(code, digest_size=16).digest() for code in codes]
    with _lock:
        todo = {}
        for key, code in zip(keys, codes):
            if key not in _cache and key not in todo:
                todo[key] = (f"pyebpf_jit_{len(_cache) + len(todo)}", code)
        if todo:
            if _engine is None:
                _setup()
            text = codegen.module([codegen.translate(code, _ABI, name)
                                   for name, code in todo.values()], _ABI)
            mod = llvm.parse_assembly(text)
            mod.verify()
            _optimize(mod)
            _engine.add_module(mod)
            _engine.finalize_object()
            for key, (name, _) in todo.items():
                _cache[key] = _engine.get_function_address(name)
        return [_cache[key] for key in keys]


def _optimize(mod):
    pto = llvm.create_pipeline_tuning_options(speed_level=2)
    pb = llvm.create_pass_builder(_target, pto)
    pb.getModulePassManager().run(mod, pb)


def install(*programs) -> None:
    """Compile ``programs`` now and have their plain runs start in the native code."""
    for program, entry in zip(programs, compile_codes([p._jit_code() for p in programs])):
        program._jit_install(entry, _engine)


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
