"""``/namespaces/{ns}/activations``: list, get, result, logs (reference/openwhisk.md §1.5)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from controller.auth import authenticate, entitled_namespace
from controller.query import flag, list_limit, list_skip, optional_ms
from controller.recent_results import RecentResults
from controller.responses import JSONResponse
from pywhisk.activation import Activation
from pywhisk.errors import BadRequest, NotFound
from pywhisk.identity import Identity
from pywhisk.store import ActivationQuery, ActivationStore

router = APIRouter()


@router.get("/namespaces/{namespace}/activations")
@router.get("/namespaces/{namespace}/activations/", include_in_schema=False)  # [OW] pathEndOrSingleSlash
async def list_activations(
    request: Request, namespace: str, identity: Identity = Depends(authenticate)
) -> JSONResponse:
    ns = entitled_namespace(identity, namespace)
    params = request.query_params
    docs, count = flag(params.get("docs")), flag(params.get("count"))
    if docs and count:
        raise BadRequest("The parameter 'docs' is not permitted with 'count'.")
    name = params.get("name")
    query = ActivationQuery(
        namespace=ns,
        # `name` may be `action` or `pkg/action`; records carry the action's own name.
        name=name.rsplit("/", 1)[-1] if name else None,
        since=optional_ms(params.get("since"), "since"),
        upto=optional_ms(params.get("upto"), "upto"),
        limit=list_limit(params.get("limit"), "activations"),
        skip=list_skip(params.get("skip")),
    )
    records: ActivationStore = request.app.state.activations
    if count:
        return JSONResponse({"activations": await records.count_activations(query)})
    if docs:
        return JSONResponse([record.to_api() for record in await records.list_activations(query)])
    # Without docs, summaries only: the store never reads the (up to 7 MB) records for a list of rows.
    as_api = getattr(records, "list_activation_summaries_api", None)
    if as_api is not None:  # SQLite: the rows as the API writes them, without validating each one again
        return JSONResponse(await as_api(query))
    return JSONResponse([summary.to_api() for summary in await records.list_activation_summaries(query)])


@router.get("/namespaces/{namespace}/activations/{activation_id}")
async def get_activation(
    request: Request, namespace: str, activation_id: str, identity: Identity = Depends(authenticate)
) -> JSONResponse:
    record = await _record(request, identity, namespace, activation_id)
    return JSONResponse(record.to_api())


@router.get("/namespaces/{namespace}/activations/{activation_id}/result")
async def get_activation_result(
    request: Request, namespace: str, activation_id: str, identity: Identity = Depends(authenticate)
) -> JSONResponse:
    record = await _record(request, identity, namespace, activation_id)
    return JSONResponse(record.response.to_api())


@router.get("/namespaces/{namespace}/activations/{activation_id}/logs")
async def get_activation_logs(
    request: Request, namespace: str, activation_id: str, identity: Identity = Depends(authenticate)
) -> JSONResponse:
    record = await _record(request, identity, namespace, activation_id)
    return JSONResponse({"logs": record.logs})


async def _record(request: Request, identity: Identity, namespace: str, activation_id: str) -> Activation:
    ns = entitled_namespace(identity, namespace)
    if len(activation_id) != 32:
        raise BadRequest(f"Activation id length is {len(activation_id)} but must be 32.")
    records: ActivationStore = request.app.state.activations
    # A blocking caller may have had this record before it was stored (``result_before_record``): the store
    # answers when it has the record, else the one this controller answered with (the namespace's own only).
    # Taken before the store read too: the completion that drops it may arrive while the store answers "none"
    # to a read that began before the record was written.
    recent: RecentResults = request.app.state.balancer.recent_results
    answered = recent.get(ns, activation_id)
    record = await records.get_activation(ns, activation_id)
    if record is None:
        record = answered if answered is not None else recent.get(ns, activation_id)
    if record is None:
        raise NotFound()
    return record
