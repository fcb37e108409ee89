"""Text layouts copied from `wsk`: list rows, the activation table, summaries, stripped log lines.

Sources: [CLI] commands/util.go (`printList`, `printEntitySummary`, `printPackageSummary`, `stripTimestamp`) and
[GOC] whisk/action.go, whisk/package.go, whisk/activation.go (`ToSummaryRowString`, `Compare`, `TruncateStr`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# Activation statusCode 0-3 as `wsk activation list` shows it ([GOC] whisk/activation.go `StatusCodes`).
STATUS_TEXT = ("success", "application error", "developer error", "internal error")
# The API's `response.status` text for each statusCode (reference/openwhisk.md §3).
_STATUS_CODE_BY_TEXT = {
    "success": 0,
    "application error": 1,
    "action developer error": 2,
    "whisk internal error": 3,
}
# A log line is `<ISO timestamp padded to 30> <stream>: <text>` (§3); wsk's pattern, including its looseness.
_LOG_PREFIX = re.compile(r"\d{4}-[01]\d-[0-3]\dT[0-2]\d:[0-6]\d:[0-6]\d.\d+Z( *(stdout|stderr):)?\s(.*)")


def annotation(document: dict[str, Any], key: str) -> Any:
    """The value of annotation `key` of an entity or activation, or None."""
    for item in document.get("annotations") or []:
        if isinstance(item, dict) and item.get("key") == key:
            return item.get("value")
    return None


def action_row(action: dict[str, Any]) -> str:
    """One `wsk action list` row: qualified name, "private" and kind (from the `exec` annotation).

    wsk prints "private" for every action, whatever `publish` says ([GOC] whisk/action.go `ToSummaryRowString`).
    """
    name = f"/{action.get('namespace', '')}/{action.get('name', '')}"
    kind = annotation(action, "exec") or ""
    return f"{name:<70} private {kind}"


def package_row(package: dict[str, Any]) -> str:
    """One `wsk package list` row: qualified name and "shared" or "private" ([GOC] whisk/package.go)."""
    name = f"/{package.get('namespace', '')}/{package.get('name', '')}"
    return f"{name:<70} {'shared' if package.get('publish') else 'private'}"


def trigger_row(trigger: dict[str, Any]) -> str:
    """One `wsk trigger list` row: qualified name and "private", whatever `publish` says ([GOC] whisk/trigger.go
    `ToSummaryRowString`)."""
    return f"{qualified_name(trigger):<70} private"


def rule_row(rule: dict[str, Any]) -> str:
    """One `wsk rule list` row: qualified name, "private" in 20 columns, and the rule's status ([GOC] whisk/rule.go
    `ToSummaryRowString`)."""
    return f"{qualified_name(rule):<70} {'private':<20} {rule.get('status', '')}"


def qualified_name(entity: dict[str, Any]) -> str:
    """`/namespace/name` of a list row."""
    return f"/{entity.get('namespace', '')}/{entity.get('name', '')}"


def sort_by_qualified_name(entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`--name-sort` for triggers and rules: by lower-cased namespace + name ([GOC] whisk/trigger.go `Compare`)."""
    return sorted(entities, key=lambda entity: f"{entity.get('namespace', '')}{entity.get('name', '')}".lower())


def rule_summary(rule: dict[str, Any]) -> list[str]:
    """`wsk rule get --summary`: `rule /ns/name` and `   (status: active)` ([CLI] commands/util.go
    `printRuleSummary`)."""
    return [f"rule {qualified_name(rule)}", f"   (status: {rule.get('status', '')})"]


def sort_actions(actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`--name-sort` for actions: those outside packages first, by name; then by lower-cased `ns/pkg` + name
    ([GOC] whisk/action.go `Compare`)."""

    def key(action: dict[str, Any]) -> tuple[bool, str]:
        namespace, name = str(action.get("namespace", "")), str(action.get("name", ""))
        packaged = "/" in namespace
        return (packaged, f"{namespace}{name}".lower() if packaged else name)

    return sorted(actions, key=key)


def sort_packages(packages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`--name-sort` for packages: by lower-cased namespace + name ([GOC] whisk/package.go `Compare`)."""
    return sorted(packages, key=lambda package: f"{package.get('namespace', '')}{package.get('name', '')}".lower())


def action_summary(action: dict[str, Any]) -> list[str]:
    """`wsk action get --summary`: the name with a description, then the parameters ("*" bound, "**" final)."""
    full_name = f"/{action.get('namespace', '')}/{action.get('name', '')}"
    return entity_summary("action", full_name, action)


def package_summary(package: dict[str, Any]) -> list[str]:
    """`wsk package get --summary`: the package, then each of its actions, labels right-aligned to 7 columns
    ([CLI] commands/util.go `printPackageSummary`)."""
    full_name = f"/{package.get('namespace', '')}/{package.get('name', '')}"
    lines = entity_summary("package", full_name, package)
    for action in package.get("actions") or []:
        if isinstance(action, dict):
            lines += entity_summary(" action", f"{full_name}/{action.get('name', '')}", action)
    return lines


def entity_summary(label: str, full_name: str, entity: dict[str, Any]) -> list[str]:
    """`printEntitySummary`: `<label> <name>: <description>` and `   (parameters: ...)`.

    The parameters are the union of the bound ones (`parameters`, tagged "*", or "**" when the entity is
    annotated `final`) and those the `parameters` annotation declares, sorted by name. Without a `description`
    annotation the description is made up from the parameter names, as wsk does.
    """
    tag = "**" if annotation(entity, "final") is True else "*"
    bound = [str(item.get("key")) for item in entity.get("parameters") or [] if isinstance(item, dict)]
    declared = annotation(entity, "parameters")
    declared_items = declared if isinstance(declared, list) else []
    declared_names = [str(item["name"]) for item in declared_items if isinstance(item, dict) and "name" in item]
    names = sorted(set(bound) | set(declared_names))
    parameters = ", ".join(f"{tag}{name}" if name in bound else name for name in names) or "none defined"
    description = annotation(entity, "description")
    if not isinstance(description, str):
        description = ""
    if not description and names:
        description = (
            f"Returns a result based on parameters {', '.join(names[:-1])} and {names[-1]}"
            if len(names) > 1
            else f"Returns a result based on parameter {names[0]}"
        )
    head = f"{label} {full_name}: {description}" if description else f"{label} {full_name}"
    return [head, f"   (parameters: {parameters})"]


def activation_table(rows: list[dict[str, Any]]) -> list[str]:
    """`wsk activation list`: a header and one row per activation summary; Kind and Status fit their content."""
    cells = [_ActivationCells.of(row) for row in rows]
    kind_width = max([len("Kind"), *(len(cell.kind) for cell in cells)])
    status_width = max([len("Status"), len(STATUS_TEXT[0]), *(len(cell.status) for cell in cells)])
    header = (
        f"{'Datetime':<19} {'Activation ID':<32} {'Kind':<{kind_width}} {'Start':<6}{'Duration':<10} "
        f"{'Status':<{status_width}} Entity"
    )
    return [header] + [
        f"{cell.datetime} {cell.activation_id:<32} {cell.kind:<{kind_width}} {cell.start:<5} "
        f"{cell.duration:<10} {cell.status:<{status_width}} {cell.entity}"
        for cell in cells
    ]


def activation_status(activation: dict[str, Any]) -> str:
    """The Status column: from the summary's `statusCode`, or from a full record's `response`."""
    code = activation.get("statusCode")
    response = activation.get("response")
    if code is None and isinstance(response, dict):
        code = response.get("statusCode", _STATUS_CODE_BY_TEXT.get(str(response.get("status"))))
    if isinstance(code, int) and 0 < code < len(STATUS_TEXT):
        return STATUS_TEXT[code]
    return STATUS_TEXT[0]


def go_duration(milliseconds: int) -> str:
    """A duration as Go's `time.Duration` prints it, which is what wsk shows: 0s, 64ms, 1.5s, 1m2.003s, 1h0m0s."""
    if milliseconds < 0:
        return "-" + go_duration(-milliseconds)
    if milliseconds == 0:
        return "0s"
    if milliseconds < 1000:
        return f"{milliseconds}ms"
    hours, rest = divmod(milliseconds, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    whole, fraction = divmod(rest, 1000)
    seconds = f"{whole}.{fraction:03d}".rstrip("0").rstrip(".")
    prefix = f"{hours}h{minutes}m" if hours else (f"{minutes}m" if minutes else "")
    return f"{prefix}{seconds}s"


def strip_log_line(line: str) -> str:
    """A log line without its timestamp and stream (`wsk activation logs --strip`)."""
    match = _LOG_PREFIX.search(line)
    return match.group(3) if match and match.group(3) else line


def truncate_middle(text: str, width: int) -> str:
    """`text` cut to `width` characters with "..." in the middle ([GOC] `TruncateStr`)."""
    if len(text) <= width:
        return text
    head = width // 2 + width % 2
    tail = len(text) - width // 2 + 3
    return text[:head] + "..." + text[tail:]


@dataclass(frozen=True)
class _ActivationCells:
    datetime: str
    activation_id: str
    kind: str
    start: str
    duration: str
    status: str
    entity: str

    @classmethod
    def of(cls, row: dict[str, Any]) -> _ActivationCells:
        start = int(row.get("start") or 0)
        end = int(row.get("end") or start)
        # Cold or warm is known from the annotations (initTime is only there on a cold start, §3).
        start_type = "" if "annotations" not in row else "cold" if annotation(row, "initTime") is not None else "warm"
        entity = (
            f"{truncate_middle(str(row.get('namespace', '')), 20)}/{truncate_middle(str(row.get('name', '')), 30)}"
            f":{truncate_middle(str(row.get('version', '')), 20)}"
        )
        return cls(
            datetime=datetime.fromtimestamp(start / 1000).strftime("%Y-%m-%d %H:%M:%S"),
            activation_id=str(row.get("activationId", "")),
            kind=str(annotation(row, "kind") or "unknown"),
            start=start_type,
            duration=go_duration(end - start if row.get("duration") else 0),
            status=activation_status(row),
            entity=entity,
        )
