"""From command-line arguments to OpenWhisk documents: qualified names, parameters, `exec`, web annotations.

Everything here is pure (apart from reading the files it is given) and raises `CliError` for bad input, so the
rules match `wsk`'s and can be tested without a server ([CLI] commands/action.go, commands/util.go).
"""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pywsk.output import CliError

# Kinds inferred from the file extension ([CLI] commands/action.go `getExec`; `.wasm` is pywhisk's own).
KIND_BY_EXTENSION = {
    ".js": "nodejs:default",
    ".py": "python:default",
    ".wasm": "wasm:default",
    ".go": "go:default",
    ".php": "php:default",
    ".rb": "ruby:default",
    ".rs": "rust:default",
    ".swift": "swift:default",
    ".jar": "java:default",
}
# Archives and binaries are always sent base64-encoded; other files only when they are not UTF-8 text.
BINARY_EXTENSIONS = frozenset({".zip", ".jar", ".wasm", ".balx"})
WEB_ANNOTATIONS = ("web-export", "raw-http", "final")
WEB_SECURE_ANNOTATION = "require-whisk-auth"
# `--web-secure true` draws a secret below 2^53, so that JavaScript (the API gateway) reads it exactly ([CLI]).
MAX_JS_INT = 2**53 - 1
_WEB_MODES = {
    "true": (True, False, True),
    "yes": (True, False, True),
    "raw": (True, True, True),
    "false": (False, False, False),
    "no": (False, False, False),
}


@dataclass(frozen=True)
class QualifiedName:
    """`/namespace/[package/]name`; `entity` is `[package/]name` as it appears in the URL."""

    namespace: str
    entity: str

    def __str__(self) -> str:
        return f"/{self.namespace}/{self.entity}"

    @property
    def package(self) -> str | None:
        """The package of `PKG/NAME`, else None."""
        package, slash, _ = self.entity.rpartition("/")
        return package if slash else None

    @property
    def name(self) -> str:
        """The entity's own name, without its package ([CLI] `GetEntity`)."""
        return self.entity.rpartition("/")[2]


def parse_qualified_name(text: str, default_namespace: str) -> QualifiedName:
    """`NAME`, `PKG/NAME`, `/NS/NAME` or `/NS/PKG/NAME`: a leading slash means the first segment is the namespace.

    Three segments without the slash (`NS/PKG/NAME`) are fully qualified too, as wsk's `addLeadSlash` reads them.
    """
    explicit = text.startswith("/") or text.count("/") == 2
    parts = text.removeprefix("/").split("/") if explicit else text.split("/")
    fewest, most = (2, 3) if explicit else (1, 2)
    if not all(parts) or not fewest <= len(parts) <= most:
        raise CliError(f"'{text}' is not a valid qualified name: use NAME, PKG/NAME, /NS/NAME or /NS/PKG/NAME.")
    if explicit:
        return QualifiedName(parts[0], "/".join(parts[1:]))
    return QualifiedName(default_namespace, text)


def parse_collection(text: str | None, default_namespace: str) -> tuple[str, str | None]:
    """The `[NAMESPACE | PACKAGE]` argument of list commands: `/NS`, `/NS/PKG` or `PKG` → (namespace, package)."""
    if not text:
        return default_namespace, None
    if text.startswith("/"):
        parts = text[1:].split("/")
        if len(parts) in (1, 2) and all(parts):
            return parts[0], parts[1] if len(parts) == 2 else None
    elif "/" not in text:
        return default_namespace, text
    raise CliError(f"'{text}' is not a valid namespace or package: use /NS, /NS/PKG or PKG.")


def parse_namespace_argument(text: str | None, default_namespace: str) -> str:
    """The optional `/NAMESPACE` argument of `package list` and `pywsk list`; a bare name is an entity, not a
    namespace, and wsk refuses it ([CLI] commands/shared.go `entityNameError`)."""
    if not text:
        return default_namespace
    parts = text[1:].split("/") if text.startswith("/") else None
    if parts is not None and len(parts) == 1 and parts[0]:
        return parts[0]
    entity = text.rpartition("/")[2] if text.startswith("/") else text
    raise CliError(
        f"An entity name, '{entity}', was provided instead of a namespace. "
        "Valid namespaces are of the following format: /NAMESPACE."
    )


def parse_shared(value: str | None) -> bool | None:
    """`--shared yes|no` → the package's `publish`; None when not given ([CLI] commands/util.go `parseShared`)."""
    if value is None or value == "":
        return None
    lowered = value.lower()
    if lowered in ("yes", "no"):
        return lowered == "yes"
    raise CliError(f"Cannot use value '{value}' for shared.")


def sequence_components(text: str, default_namespace: str) -> list[str]:
    """`a,pkg/b,/ns/c` → fully qualified component names, as wsk sends them ([CLI] `csvToQualifiedActions`)."""
    return [str(parse_qualified_name(name.strip(), default_namespace)) for name in text.split(",")]


def web_secure_secret(mode: str) -> bool | int | str:
    """`--web-secure true` → a random secret number, `false` → False, anything else → that string
    ([CLI] commands/action.go `webSecureSecret`)."""
    lowered = mode.lower()
    if lowered == "true":
        return secrets.randbelow(MAX_JS_INT + 1)
    if lowered == "false":
        return False
    return mode


def json_or_string(value: str) -> Any:
    """A `-p`/`-a` VALUE: JSON if it parses as JSON, else the string itself ([CLI] `getFormattedJSON`)."""
    try:
        return json.loads(value, parse_constant=_reject_constant)
    except ValueError:
        return value


def key_values(pairs: list[tuple[str, str]], file: Path | None, what: str) -> dict[str, Any]:
    """Values from a JSON file (`-P`/`-A`), then from `KEY VALUE` pairs, which win over the file."""
    values: dict[str, Any] = {}
    if file is not None:
        loaded = _read_json_object(file, what)
        values.update(loaded)
    for key, raw in pairs:
        values[key] = json_or_string(raw)
    return values


def as_key_value_list(values: dict[str, Any]) -> list[dict[str, Any]]:
    """OpenWhisk's `[{"key", "value"}]` form of parameters and annotations."""
    return [{"key": key, "value": value} for key, value in values.items()]


def web_annotations(mode: str) -> dict[str, bool]:
    """`--web true|yes` → web-export, final; `raw` → also raw-http; `false|no` → all three false."""
    flags = _WEB_MODES.get(mode.lower())
    if flags is None:
        raise CliError(
            f"Invalid argument '{mode}' for --web flag. Valid input consist of 'yes', 'true', 'raw', 'false', or 'no'."
        )
    return dict(zip(WEB_ANNOTATIONS, flags, strict=True))


def merge_annotations(base: list[dict[str, Any]], updates: dict[str, Any]) -> list[dict[str, Any]]:
    """`base` without the keys in `updates`, followed by `updates` (wsk appends web annotations this way)."""
    kept = [annotation for annotation in base if annotation.get("key") not in updates]
    return kept + as_key_value_list(updates)


def build_exec(
    artifact: str | Path | None,
    *,
    kind: str | None,
    main: str | None,
    docker: str | None,
    sequence: bool,
    default_namespace: str,
) -> dict[str, Any] | None:
    """The `exec` of an action PUT, or None when the flags give no code, image or sequence."""
    if kind and docker:
        raise CliError("Cannot specify both --kind and --docker at the same time.")
    if sequence:
        # As in wsk, --sequence is a flag and the ACTION argument lists the components: `--sequence a,b`.
        if artifact is None:
            raise CliError("An action name and code artifact are required.")
        if kind or docker:
            raise CliError("--sequence takes the component actions instead of --kind or --docker.")
        return {"kind": "sequence", "components": sequence_components(str(artifact), default_namespace)}
    if artifact is None:
        if docker:
            return _with_main({"kind": "blackbox", "image": docker}, main)
        if kind or main:
            raise CliError("--kind and --main need the action's code file.")
        return None
    artifact = Path(artifact)
    extension = artifact.suffix.lower()
    if docker:
        exec_: dict[str, Any] = {"kind": "blackbox", "image": docker}
    elif kind:
        exec_ = {"kind": kind}
    elif extension == ".zip":
        raise CliError("creating an action from a .zip artifact requires specifying the action kind explicitly")
    elif extension in KIND_BY_EXTENSION:
        exec_ = {"kind": KIND_BY_EXTENSION[extension]}
    else:
        raise CliError(f"'{extension or artifact.name}' is not a supported action runtime; give --kind.")
    exec_["code"] = read_code(artifact)
    return _with_main(exec_, main)


def read_code(artifact: Path) -> str:
    """The file's text, or its base64 encoding for archives, WebAssembly modules and other binary files."""
    try:
        content = artifact.read_bytes()
    except OSError as exc:
        raise CliError(f"File '{artifact}' is not a valid file or it does not exist: {exc.strerror or exc}") from exc
    if artifact.suffix.lower() not in BINARY_EXTENSIONS:
        try:
            return content.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return base64.b64encode(content).decode("ascii")


def _with_main(exec_: dict[str, Any], main: str | None) -> dict[str, Any]:
    if main:
        exec_["main"] = main
    return exec_


def _read_json_object(file: Path, what: str) -> dict[str, Any]:
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"File '{file}' is not a valid file or it does not exist: {exc}") from exc
    try:
        loaded = json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        raise CliError(f"Invalid JSON in {what} file '{file}': {exc}") from exc
    if not isinstance(loaded, dict):
        raise CliError(f"The {what} file '{file}' must contain a JSON object.")
    return loaded


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON; such a value is taken as a string, as wsk does.
    raise ValueError(name)
