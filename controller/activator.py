"""Starting activations and waiting for their records: what an invoke, a sequence, a web action and a trigger
share ([OW] PrimitiveActions.invokeSimpleAction).

The caller has resolved the action (``controller.resolve``) and checked the rate throttle; ``activate`` merges the
parameters, checks the concurrency throttle and publishes in one step of the event loop, and for a blocking call
waits up to ``wait_ms`` for the record (None when it did not come in time: the caller answers 202 and the client
polls).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from controller.loadbalancer import LoadBalancer
from controller.throttles import Throttles
from pywhisk.activation import Activation, new_activation_id
from pywhisk.entities import Action, as_dict
from pywhisk.errors import BadRequest, ServiceUnavailable, StoreUnavailable, WhiskError
from pywhisk.identity import Identity
from pywhisk.messages import ActionRef, ActivationMessage, ControllerInstance, TransactionId
from pywhisk.store import ActivationStore

if TYPE_CHECKING:
    from controller.alarms.feed import AlarmFeeds
    from controller.conductors import ConductorRunner
    from controller.sequences import SequenceRunner

log = logging.getLogger("pywhisk.controller")

BUS_UNAVAILABLE = "The activation could not be scheduled: the message bus is unavailable."


@dataclass
class Activated:
    """An accepted activation: its id, and its record when the caller blocked and it came in time."""

    activation_id: str
    record: Activation | None = None


class Activator:
    """Publishes activations to the load balancer and waits for their records."""

    def __init__(self, balancer: LoadBalancer, records: ActivationStore, throttles: Throttles, controller_id: int):
        self._balancer = balancer
        self._records = records
        self._throttles = throttles
        self._controller = ControllerInstance(asString=str(controller_id))
        self._sequences: SequenceRunner | None = None
        self._feeds: AlarmFeeds | None = None
        self._conductors: ConductorRunner | None = None

    def run_sequences_with(self, sequences: SequenceRunner) -> None:
        """Actions of kind ``sequence`` are run by ``sequences`` (which activates their components here)."""
        self._sequences = sequences

    def run_conductors_with(self, conductors: ConductorRunner) -> None:
        """Conductor actions start compositions run by ``conductors`` (which activates their steps here)."""
        self._conductors = conductors

    def run_feeds_with(self, feeds: AlarmFeeds) -> None:
        """The built-in feed actions of ``/whisk.system/alarms`` (kind ``alarms:feed``) are run by ``feeds``."""
        self._feeds = feeds

    def check_concurrent(self, identity: Identity) -> None:
        """429 when the namespace has no room for one more activation in flight."""
        self._throttles.check_concurrent(identity)

    async def activate(
        self,
        identity: Identity,
        action: Action,
        params: dict[str, Any] | list[Any] | None,
        *,
        transid: TransactionId,
        blocking: bool,
        wait_ms: int = 0,
        cause: str | None = None,
        activation_id: str | None = None,
        component_of: str | None = None,
        conductor_step: bool = False,
    ) -> Activated:
        """Run ``action`` (with the parameters it inherited) for ``identity``. 429 when over the namespace's
        concurrency, 503 when the bus refuses; otherwise accepted, and never lost.

        A sequence goes to the sequence runner. ``component_of`` is the id of the sequence this activation is a
        component of: its cause, and no throttle of its own (OpenWhisk checks a sequence's once).

        A conductor action goes to the conductor runner, unless ``conductor_step``: the composition's own
        activation of it (``component_of`` is then the composition's id)."""
        if action.exec.kind == "alarms:feed" and self._feeds is not None:  # no container: the controller's
            return await self._feeds.invoke(
                identity,
                action,
                params,
                transid=transid,
                blocking=blocking,
                activation_id=activation_id,
                cause=component_of or cause,
            )
        if action.exec.kind == "sequence" and self._sequences is not None:
            return await self._sequences.invoke(
                identity,
                action,
                params,
                transid=transid,
                blocking=blocking,
                wait_ms=wait_ms,
                activation_id=activation_id,
            )
        if not conductor_step and self._conductors is not None and self._conductors.runs(action):
            return await self._conductors.invoke(
                identity,
                action,
                params,
                transid=transid,
                blocking=blocking,
                wait_ms=wait_ms,
                activation_id=activation_id,
                cause=component_of,
            )
        activation_id = activation_id or new_activation_id()
        message = ActivationMessage(
            transid=transid.to_wire(),
            action=ActionRef(path=action.namespace, name=action.name, version=action.version),
            revision=action.rev,
            user=identity,
            activationId=activation_id,
            rootControllerIndex=self._controller,
            blocking=blocking,
            content=merged_params(action, params),
            initArgs=[p.key for p in action.parameters if p.init],
            cause=component_of or cause,
            causedBy="sequence" if component_of else None,
        )
        if component_of is None:
            self._throttles.check_concurrent(identity)  # no await until publish has booked it: no overshoot
        try:
            await self._balancer.publish(message, action)
        except WhiskError:
            raise
        except Exception as exc:  # the bus did not take the message: nothing was accepted
            log.warning("publishing activation %s failed: %s", activation_id, exc)
            raise ServiceUnavailable(BUS_UNAVAILABLE) from exc
        if not blocking:
            return Activated(activation_id)
        return Activated(activation_id, await self.wait(identity.namespace.name, activation_id, wait_ms))

    async def wait(self, namespace: str, activation_id: str, wait_ms: int) -> Activation | None:
        """The record of a blocking activation published here, or None if it did not come within ``wait_ms``."""
        record = await self._balancer.wait(activation_id, wait_ms / 1000)
        if record is None and self._balancer.completed(activation_id):
            # The completion came without the record (e.g. too large for the bus): read the store.
            try:
                record = await self._records.get_activation(namespace, activation_id)
            except StoreUnavailable as exc:  # accepted all the same: the caller gets the id and polls later
                log.warning("reading the record of %s failed: %s", activation_id, exc)
        return record


def merged_params(action: Action, params: dict[str, Any] | list[Any] | None) -> dict[str, Any] | list[Any]:
    """Invoke-time params over the action's (inherited) defaults; ``final`` actions refuse overrides of every
    parameter with a value (not null), inherited from its package or binding too ([OW] immutableParameters)."""
    if isinstance(params, list):
        return params
    defaults = as_dict([p for p in action.parameters if not p.init])
    given = params or {}
    immutable = {p.key for p in action.parameters if p.value is not None}
    if action.annotation("final") is True and set(given) & immutable:
        raise BadRequest("Request defines parameters that are not allowed (e.g., reserved properties).")
    return {**defaults, **given}
