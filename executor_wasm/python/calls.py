"""Calling the runner's exports without wasmtime-py's per-call type walk.

Why: wasmtime-py's component call fetches the function's type again through the C API on every call (a
``FuncType``, each parameter's type, the result tuple's element types) and converts each value through a
Python class per WIT type; for the runner's four strings and its ``(status, payload)`` answer that is
~0.1 ms of a ~1 ms hello run. Here the signature is checked once per Engine (:func:`supports`) and the
strings are written and read with one C call each (docs/python-wasm.md, "What a warm run costs").

Everything the runner's exports take and answer is text (``guest/runner.wit``): a ``list<u8>`` crosses
the C API as one ``wasmtime_component_val_t`` per byte, which Wasmtime converts one by one (a 50 KB
action's code cost ~18 ms to pass that way, ~200 ms through wasmtime-py's conversions). If wasmtime-py's
private bindings moved or the WIT changed, the runner keeps calling through wasmtime-py.
"""

from __future__ import annotations

import ctypes
from ctypes import byref

import wasmtime
import wasmtime.component
from wasmtime import _ffi as ffi
from wasmtime.component import _types as component_types

_VAL = ffi.wasmtime_component_val_t
_U16 = ffi.WASMTIME_COMPONENT_U16.value
_STRING = ffi.WASMTIME_COMPONENT_STRING.value
_TUPLE = ffi.WASMTIME_COMPONENT_TUPLE.value


def supports(function: wasmtime.component.Func, store: wasmtime.Store, arity: int) -> bool:
    """Does ``function`` take ``arity`` strings and answer ``tuple<u16, string>``, and are the private
    bindings this module uses there?"""
    try:
        function_type = function.type(store)
        types = [valtype for _name, valtype in function_type.params]
        result = function_type.result
        if not hasattr(function, "_func") or len(types) != arity:
            return False
        if not all(isinstance(valtype, component_types.String) for valtype in types):
            return False
        if not isinstance(result, component_types.TupleType):
            return False
        elements = result.elements
        return (
            len(elements) == 2
            and isinstance(elements[0], component_types.U16)
            and isinstance(elements[1], component_types.String)
        )
    except (AttributeError, TypeError, ValueError):  # wasmtime-py's component types moved
        return False


def call(function: wasmtime.component.Func, store: wasmtime.Store, args: tuple[str, ...]) -> tuple[int, str]:
    """``function(*args)`` for a signature :func:`supports` accepted: the guest's (status, payload).

    Raises what wasmtime-py's own call raises: ``WasmtimeError`` (a trap, an epoch interruption, a limit).
    """
    lowered = (_VAL * len(args))()  # zeroed: kind 0 is a bool, which owns nothing, until lowered
    result = _VAL()
    try:
        for value, arg in zip(lowered, args, strict=True):
            value.of.string = ffi.str_to_capi(arg)  # copied into a vector the value owns
            value.kind = _STRING
        error = ffi.wasmtime_component_func_call(
            byref(function._func), store._context(), lowered, len(args), byref(result), 1
        )
        if error:
            raise wasmtime.WasmtimeError._from_ptr(error)
        return _lift(result)
    finally:
        for value in lowered:
            ffi.wasmtime_component_val_delete(byref(value))
        ffi.wasmtime_component_val_delete(byref(result))  # the answer's tuple and string with it


def _lift(result: _VAL) -> tuple[int, str]:
    answer = result.of.tuple
    if result.kind != _TUPLE or answer.size != 2:
        raise wasmtime.WasmtimeError("the Python runner answered something other than (status, payload)")
    status, payload = answer.data[0], answer.data[1]
    if status.kind != _U16 or payload.kind != _STRING:
        raise wasmtime.WasmtimeError("the Python runner answered something other than (status, payload)")
    text = payload.of.string
    return int(status.of.u16), ctypes.string_at(text.data, text.size).decode() if text.size else ""
