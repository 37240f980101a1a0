"""Users and ACLs on the active controller.

Owns the controller side of Kafka's AlterUserScramCredentials, CreateAcls and DeleteAcls (KRaft's
ScramControlManager and AclControlManager seen from the RPC side), as the Controller RPCs
UpsertUserScramCredentials, DeleteUserScramCredentials, CreateAcls and DeleteAcls:

- Each item of a request is one metadata command with request id "<request id>/<item>", validated
  against the newest image under the controller's write lock, exactly like the topic and config
  requests of `admin_requests` (which `SecurityRequests` extends). Validation is
  server.security.management's; the same user and mechanism twice in one request is
  INVALID_REQUEST.
- Deleting mechanism 0 removes every credential of the user in one AtomicBatch (the user goes at
  once); deleting what does not exist is RESOURCE_NOT_FOUND.
- DeleteAcls takes Kafka's filters (`AclFilter`): each filter is resolved against the newest
  image into exact bindings, which one `delete_acls` command removes; the result lists them. A
  binding an earlier filter of the request removed is not reported again (Kafka's rule), and a
  retried request whose first attempt was applied reports none (they are gone).

Imports: freshet.metadata (commands, controller logic, errors), freshet.server (status,
security.management, controller.admin_requests), wire types.
Thread-safety: not thread-safe; runs on the node's event loop.
"""

from __future__ import annotations

import collections
import functools

from freshet.metadata import commands
from freshet.metadata import controller as logic
from freshet.metadata.errors import ControllerRequestError
from freshet.server import status
from freshet.server.controller.admin_requests import AdminRequests
from freshet.server.security.management import (
    ALL_MECHANISMS,
    binding_of,
    check_user_name,
    credential_of,
    filter_of,
    mechanism_of,
)
from freshet.v1 import common_pb2, controller_pb2, metadata_pb2

E = common_pb2.ErrorCode


# -- the controller's requests ------------------------------------------------------------------------


class SecurityRequests(AdminRequests):
    """User and ACL requests of one controller (module docstring). Not thread-safe (loop)."""

    async def upsert_user_scram_credentials(
        self, request: controller_pb2.UpsertUserScramCredentialsRequest
    ) -> controller_pb2.UpsertUserScramCredentialsResponse:
        response = controller_pb2.UpsertUserScramCredentialsResponse()

        def build(upsertion, rid: str, epoch: int) -> metadata_pb2.MetadataCommand:
            return commands.upsert_user_credential(rid, epoch, upsertion.name, credential_of(upsertion))

        await self._per_credential(request.request_id, request.upsertions, response, build)
        return response

    async def delete_user_scram_credentials(
        self, request: controller_pb2.DeleteUserScramCredentialsRequest
    ) -> controller_pb2.DeleteUserScramCredentialsResponse:
        response = controller_pb2.DeleteUserScramCredentialsResponse()
        await self._per_credential(request.request_id, request.deletions, response, self._deletion)
        return response

    async def _per_credential(self, request_id: str, items, response, build) -> None:
        """One command per (user, mechanism) item, each with its own request id and result; an
        item named twice in the request is refused (both times) and the others go ahead.
        `build(item, rid, controller_epoch)` makes the item's command."""
        logic.check_request_id(request_id)
        named = collections.Counter((item.name, item.mechanism) for item in items)
        async with self._controller.lock:
            core = self._controller.require_active()
            for index, item in enumerate(items):
                rid = logic.item_request_id(request_id, index)
                result = response.results.add(user=item.name, mechanism=item.mechanism)
                if named[(item.name, item.mechanism)] > 1:
                    result.error.CopyFrom(status.detail(
                        E.INVALID_REQUEST, f"user {item.name!r} and mechanism {item.mechanism} appear more than once"
                    ))
                    continue
                await self._item(rid, result.error, response, functools.partial(build, item, rid, core.controller_epoch))

    def _deletion(self, deletion: controller_pb2.ScramCredentialDeletion, rid: str, epoch: int) -> metadata_pb2.MetadataCommand:
        check_user_name(deletion.name)
        credentials = self._quorum.image.users.get(deletion.name, {})
        if deletion.mechanism != ALL_MECHANISMS:
            mechanism = mechanism_of(deletion.mechanism)
            if mechanism not in credentials:
                raise ControllerRequestError(
                    E.RESOURCE_NOT_FOUND, f"user {deletion.name!r} has no {mechanism.mechanism_name} credential"
                )
            return commands.delete_user_credential(rid, epoch, deletion.name, mechanism)
        if not credentials:
            raise ControllerRequestError(E.RESOURCE_NOT_FOUND, f"user {deletion.name!r} does not exist")
        return commands.atomic_batch(
            rid, epoch, [commands.delete_user_credential(*commands.INNER, deletion.name, m) for m in sorted(credentials)]
        )

    async def create_acls(self, request: controller_pb2.CreateAclsRequest) -> controller_pb2.CreateAclsResponse:
        logic.check_request_id(request.request_id)
        response = controller_pb2.CreateAclsResponse()
        async with self._controller.lock:
            core = self._controller.require_active()
            for item, record in enumerate(request.acls):
                rid = logic.item_request_id(request.request_id, item)
                result = response.results.add(acl=record)

                def build(record=record, rid=rid) -> metadata_pb2.MetadataCommand:
                    return commands.create_acls(rid, core.controller_epoch, [binding_of(record)])

                await self._item(rid, result.error, response, build)
        return response

    async def delete_acls(self, request: controller_pb2.DeleteAclsRequest) -> controller_pb2.DeleteAclsResponse:
        logic.check_request_id(request.request_id)
        response = controller_pb2.DeleteAclsResponse()
        async with self._controller.lock:
            core = self._controller.require_active()
            for item, message in enumerate(request.filters):
                rid = logic.item_request_id(request.request_id, item)
                result = response.results.add()
                remembered = self._remembered(rid)
                if remembered is None:
                    try:
                        matches = self._quorum.image.acls.matching(filter_of(message))
                    except ControllerRequestError as refused:
                        result.error.CopyFrom(status.detail_for(refused))
                        continue
                    if not matches:
                        result.error.CopyFrom(status.ok_detail())
                        continue
                    remembered = await self._controller.propose_for_request(
                        commands.delete_acls(rid, core.controller_epoch, matches)
                    )
                    if remembered.error_code == E.NONE:
                        result.acls.extend(commands.acl_binding_record(binding) for binding in matches)
                self._fill_outcome(result.error, remembered, response)
        return response
