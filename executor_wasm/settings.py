"""``WasmSettings``: the Wasmtime executor's own knobs, read from ``PYWHISK_WASM_*`` environment variables.

The kernel's ``Settings`` holds what the roles need; what only this executor reads lives here, so the
plugin reads it itself (plugin.py) and tests pass one explicitly. The names are those pywhisk has always
used: every field is ``PYWHISK_WASM_<FIELD>`` except ``python_cache_dir`` (``PYWHISK_PYTHON_WASM_CACHE_DIR``).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# The subdirectory of the data directory that holds compiled modules (cache.py).
MODULES_DIR = "modules"
# Memory mappings a sleeping run holds (~8.6 measured: two stacks with guards, the Store's memory reservation
# split by its copy-on-write image), rounded up. deploy/local/host-tuning.sh provisions more (10 a run + 65,536).
MAPPINGS_PER_RUN = 9
# Mappings the rest of the server uses (libraries, heaps, the Python runner's pool: ~5,000 measured).
MAPPINGS_RESERVED = 8_192
MAX_MAP_COUNT = Path("/proc/sys/vm/max_map_count")


class WasmSettings(BaseSettings):
    """Configuration of the Wasmtime executor, in-process or as a ``pywhisk executor-wasm`` service.

    Fields (environment variable, default):

    - ``executor_url`` (``PYWHISK_WASM_EXECUTOR_URL``, none): drive a ``pywhisk executor-wasm`` service at
      this URL over HTTP instead of running Wasmtime in the invoker's process.
    - ``threads`` (``PYWHISK_WASM_THREADS``, 8): guests executing at once (compute slots, CPU-bound); a guest
      waiting in a WASI sleep gives its slot to another run (sleeps.py). Slots are shared fairly between
      namespaces (slots.py): a freed slot goes to the waiting namespace holding the fewest.
    - ``threads_reserve`` (``PYWHISK_WASM_THREADS_RESERVE``, 1): compute slots only a namespace holding none
      may take, so that its run starts at once however busy another namespace keeps the rest; at most a
      quarter of ``threads`` (none below 4), as the pool's ``PYWHISK_USER_MEMORY_RESERVE_MB``.
    - ``max_runs`` (``PYWHISK_WASM_MAX_RUNS``, 4096): runs in progress at once, one thread each, most of them
      asleep; also how many runs one instance takes at once (``max_runs_per_instance``). A sleeping run holds no
      descriptor but ~8.6 memory mappings (its thread's and Wasmtime's stacks, its Store's memory), so above
      ~7,000 raise ``vm.max_map_count`` (65,530 by default) as well (docs/benchmarks.md, issue 17).
    - ``executor_port`` (``PYWHISK_WASM_EXECUTOR_PORT``, 9000): the port of ``pywhisk executor-wasm``
      (its ``--port`` wins).
    - ``python_cache_dir`` (``PYWHISK_PYTHON_WASM_CACHE_DIR``, ``~/.cache/pywhisk/python-wasm``): the Python
      runner component of ``python:3`` actions on WASM (python/build.py), built once per machine (~10 s), so
      kept in the user's cache and shared by every data directory.
    - ``js_cache_dir`` (``PYWHISK_WASM_JS_CACHE_DIR``, ``~/.cache/pywhisk/js-wasm``): the JavaScript runner
      component of ``nodejs`` actions on WASM (js/build.py) and the componentize-js that builds it (~1 min,
      once per machine), likewise.
    - ``max_module_bytes`` (``PYWHISK_WASM_MAX_MODULE_BYTES``, 64 MiB): the largest module accepted, counted in
      bytes actually produced when ``exec.code`` is a zip (unzip.py); a zip bomb is refused at this budget.
    - ``compile_processes`` (``PYWHISK_WASM_COMPILE_PROCESSES``, 2): modules compiled at once, each in its own
      child process (compiler.py), killed when every ``/init`` waiting for it has timed out.
    - ``compile_memory_mb`` (``PYWHISK_WASM_COMPILE_MEMORY_MB``, 2048): the address-space limit (``RLIMIT_AS``)
      of a compiler process; a module that needs more fails its ``/init`` as an invalid module.
    - ``grant_dirs``, ``grant_env``, ``grant_net`` (``PYWHISK_WASM_GRANT_DIRS`` / ``_ENV`` / ``_NET``, none,
      none, false): what a ``wasm:wasi`` action's annotations may be granted (grants.py, docs/security.md):
      directories (and their subdirectories) it may preopen read-only, host environment variables it may
      read, and WoW's ``http.get`` import. Lists are JSON: ``'["/srv/data"]'``.
    - ``pooling`` (``PYWHISK_WASM_POOLING``, true): instantiate the Python runner of ``python:3`` actions
      with Wasmtime's pooling allocator (python/pooling.py): slots reserved once and reset in place, the
      memory image kept resident and copied back after a run instead of faulted in page by page during
      the next one. Off, or refused by the host, every run uses the on-demand allocator, as ``wasm:wasi``
      modules always do (docs/python-wasm.md, "Pooling allocator").
    - ``pooling_instances`` (``PYWHISK_WASM_POOLING_INSTANCES``, 64): Python runner instances alive at once
      in the pool, bounded further by the invoker's memory budget (``user_memory_mb``); a run that finds
      the pool full is instantiated on demand.
    - ``pooling_keep_resident_mb`` (``PYWHISK_WASM_POOLING_KEEP_RESIDENT_MB``, 32): bytes of each linear
      memory reset by copying (kept resident) rather than decommitted; it must cover the runner's memory
      image (~13 MiB) for a run to take no page faults, and bounds what an idle warm slot keeps resident.
    - ``python_ready`` (``PYWHISK_WASM_PYTHON_READY``, true): keep one Python runner instance per shape of
      limits instantiated ahead, and close a finished run's Store (reset its pool slot) after the answer,
      both on a thread of their own (python/runner.py), so neither is on the activation's path.
    - ``user_memory_mb`` (``PYWHISK_USER_MEMORY_MB``, 4096): the kernel's invoker memory budget, read here
      too: a Python run holds at least 128 MB of it, so the pool never needs more slots than fit.
    - ``renice`` (``PYWHISK_WASM_RENICE``, true): a guest whose run has used more than ``renice_quantum_ms``
      of CPU time gets its thread reniced to ``renice_nice`` until it stops executing (priority.py), so the
      event loop and short guests (a hello: well under 1 ms) preempt CPU-bound ones (docs/security.md).
    - ``renice_quantum_ms`` (``PYWHISK_WASM_RENICE_QUANTUM_MS``, 10): the CPU time a run gets at nice 0; it
      is reniced at the first epoch tick (every 10 ms) after it.
    - ``renice_nice`` (``PYWHISK_WASM_RENICE_NICE``, 19): the nice value of long-running guests' threads.
    - ``inline`` (``PYWHISK_WASM_INLINE``, true): a warm guest that cannot block and whose recent runs were
      all short runs on the event loop itself, bounded by a 2 ms interrupt timer, instead of on a pool thread
      (inline.py); one that reaches the bound is run again on the pool.
    """

    # populate_by_name: tests and callers pass ``python_cache_dir=`` although its variable has another name.
    model_config = SettingsConfigDict(env_prefix="PYWHISK_WASM_", extra="ignore", populate_by_name=True)

    executor_url: str | None = None
    threads: int = Field(default=8, ge=1)
    threads_reserve: int = Field(default=1, ge=0)
    max_runs: int = Field(default=4096, ge=1)
    executor_port: int = 9000
    # An alias is read as given (no prefix): this one predates the PYWHISK_WASM_ prefix.
    python_cache_dir: Path = Field(
        default=Path.home() / ".cache" / "pywhisk" / "python-wasm",
        validation_alias=AliasChoices("PYWHISK_PYTHON_WASM_CACHE_DIR"),
    )
    js_cache_dir: Path = Path.home() / ".cache" / "pywhisk" / "js-wasm"
    max_module_bytes: int = Field(default=64 * 1_048_576, ge=1024)
    compile_processes: int = Field(default=2, ge=1)
    compile_memory_mb: int = Field(default=2048, ge=256)
    grant_dirs: list[Path] = Field(default_factory=list)
    grant_env: list[str] = Field(default_factory=list)
    grant_net: bool = False
    pooling: bool = True
    pooling_instances: int = Field(default=64, ge=1)
    pooling_keep_resident_mb: int = Field(default=32, ge=0)
    python_ready: bool = True
    user_memory_mb: int = Field(default=4096, ge=128, validation_alias=AliasChoices("PYWHISK_USER_MEMORY_MB"))
    renice: bool = True
    renice_quantum_ms: int = Field(default=10, ge=0)
    renice_nice: int = Field(default=19, ge=1, le=19)
    inline: bool = True


def module_cache_dir(data_dir: Path) -> Path:
    """Where compiled modules are kept under a data directory, by the in-process executor and the service alike."""
    return data_dir / MODULES_DIR


def map_count_warning(max_runs: int, max_map_count: int | None = None) -> str | None:
    """A warning when ``max_runs`` sleeping runs would need more memory mappings than ``vm.max_map_count`` allows.

    Past the limit a run's thread or Store fails to map (``pthread_create``/``mmap`` ENOMEM) well before the
    memory budget is reached. ``max_map_count`` defaults to the host's (None where it cannot be read).
    """
    if max_map_count is None:
        try:
            max_map_count = int(MAX_MAP_COUNT.read_text())
        except (OSError, ValueError):
            return None
    needed = max_runs * MAPPINGS_PER_RUN + MAPPINGS_RESERVED
    if needed <= max_map_count:
        return None
    return (
        f"PYWHISK_WASM_MAX_RUNS={max_runs} sleeping runs need ~{needed:,} memory mappings ({MAPPINGS_PER_RUN} each"
        f" plus {MAPPINGS_RESERVED:,}) but vm.max_map_count is {max_map_count:,}: about"
        f" {max(0, (max_map_count - MAPPINGS_RESERVED) // MAPPINGS_PER_RUN):,} can sleep at once."
        f" Run deploy/local/host-tuning.sh {max_runs} (or sysctl -w vm.max_map_count=N, N >= {needed})"
    )
