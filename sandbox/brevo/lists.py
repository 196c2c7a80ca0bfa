"""Folders and lists, and list membership (150 contacts per call)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.brevo.common import (
    LIST_ADD_LIMIT,
    LISTS_PAGE_MAX,
    Contact,
    bad,
    brevo_error,
    int_param,
    iso,
    page_params,
    utc_now,
)
from sandbox.core import read_json


class ListsApi:
    """``/v3/contacts/folders`` and ``/v3/contacts/lists``."""

    def _list_view(self, list_id: int) -> dict:
        members = self.members[list_id]
        blacklisted = sum(1 for i in members if self.contacts[i].email_blacklisted)
        return {
            **self.lists[list_id],
            "uniqueSubscribers": len(members),
            "totalBlacklisted": blacklisted,
            "totalSubscribers": len(members) - blacklisted,
        }

    def _new_list(self, name: str, folder_id: int) -> int:
        list_id = next(self.ids["list"])
        self.lists[list_id] = {
            "id": list_id,
            "name": name,
            "folderId": folder_id,
            "createdAt": iso(utc_now()),
        }
        self.members[list_id] = set()
        return list_id

    def _list_or_404(self, request: Request) -> int | JSONResponse:
        raw = request.path_params["list_id"]
        if not raw.isdigit() or int(raw) not in self.lists:
            return brevo_error(404, "document_not_found", "List ID does not exist")
        return int(raw)

    async def list_folders(self, request: Request) -> Response:
        limit = int_param(request, "limit", 10, 0, 50)
        offset = int_param(request, "offset", 0, 0, None)
        for value in (limit, offset):
            if isinstance(value, JSONResponse):
                return value
        folders = []
        for folder in list(self.folders.values())[offset : offset + limit]:
            lists = [self._list_view(i) for i, item in self.lists.items() if item["folderId"] == folder["id"]]
            folders.append(
                {
                    **folder,
                    "uniqueSubscribers": sum(v["uniqueSubscribers"] for v in lists),
                    "totalBlacklisted": sum(v["totalBlacklisted"] for v in lists),
                    "totalSubscribers": sum(v["totalSubscribers"] for v in lists),
                }
            )
        return JSONResponse({"folders": folders, "count": len(self.folders)})

    async def create_folder(self, request: Request) -> Response:
        body = await read_json(request)
        if not isinstance(body, dict) or not isinstance(body.get("name"), str) or not body["name"].strip():
            return bad("missing_parameter", "name is required")
        folder_id = next(self.ids["folder"])
        self.folders[folder_id] = {"id": folder_id, "name": body["name"]}
        return JSONResponse({"id": folder_id}, status_code=201)

    async def list_lists(self, request: Request) -> Response:
        page = page_params(request, 10, LISTS_PAGE_MAX)
        if isinstance(page, JSONResponse):
            return page
        limit, offset, newest_first = page
        ids = sorted(self.lists, reverse=newest_first)[offset : offset + limit]
        return JSONResponse({"lists": [self._list_view(i) for i in ids], "count": len(self.lists)})

    async def create_list(self, request: Request) -> Response:
        body = await read_json(request)
        if not isinstance(body, dict):
            return bad("bad_request", "Input must be a valid JSON object")
        if not isinstance(body.get("name"), str) or not body["name"].strip() or body.get("folderId") is None:
            return bad("missing_parameter", "name and folderId are required")
        if body["folderId"] not in self.folders:
            return bad("invalid_parameter", "Folder ID does not exist")
        return JSONResponse({"id": self._new_list(body["name"], body["folderId"])}, status_code=201)

    async def get_list(self, request: Request) -> Response:
        list_id = self._list_or_404(request)
        if isinstance(list_id, JSONResponse):
            return list_id
        return JSONResponse({**self._list_view(list_id), "campaignStats": [], "dynamicList": False})

    async def list_members(self, request: Request) -> Response:
        list_id = self._list_or_404(request)
        if isinstance(list_id, JSONResponse):
            return list_id
        listing = self._listing(request, self.members[list_id], "list_members", list_id)
        if isinstance(listing, JSONResponse):
            return listing
        page, count, _ = listing
        return JSONResponse({"contacts": [c.public() for c in page], "count": count})

    def _membership_targets(self, body: Any) -> tuple[str, list] | JSONResponse:
        if not isinstance(body, dict):
            return bad("bad_request", "Input must be a valid JSON object")
        keys = [k for k in ("emails", "ids") if k in body]
        if len(keys) != 1 or not isinstance(body[keys[0]], list) or not body[keys[0]]:
            return bad("invalid_parameter", "Send either a non-empty emails list or a non-empty ids list")
        if len(body[keys[0]]) > LIST_ADD_LIMIT:
            return bad(
                "out_of_range", f"At most {LIST_ADD_LIMIT} contacts per request; use the import for bulk"
            )
        return keys[0], body[keys[0]]

    def _member(self, kind: str, value: Any) -> Contact | None:
        if kind == "emails":
            return self._find(value, "email_id") if isinstance(value, str) else None
        return self.contacts.get(value) if isinstance(value, int) and not isinstance(value, bool) else None

    async def add_to_list(self, request: Request) -> Response:
        """Existing contacts not yet in the list succeed; the rest fail; none succeeding is a 400."""
        list_id = self._list_or_404(request)
        if isinstance(list_id, JSONResponse):
            return list_id
        targets = self._membership_targets(await read_json(request))
        if isinstance(targets, JSONResponse):
            return targets
        success, failure = self._change_membership(*targets, lambda contact: self._link(contact, list_id))
        if not success:
            return bad(
                "invalid_parameter",
                "Contact is already present in the selected list or contact does not exist in account",
            )
        return JSONResponse({"contacts": {"success": success, "failure": failure}}, status_code=201)

    def _change_membership(self, kind: str, values: list, change: Callable[[Contact], bool]) -> tuple[list, list]:
        """Apply ``change`` (link or unlink) to each targeted contact: (values that changed, the rest)."""
        success, failure = [], []
        for value in values:
            contact = self._member(kind, value)
            if contact is not None and change(contact):
                self._touch(contact)
                success.append(value)
            else:
                failure.append(value)
        return success, failure

    async def remove_from_list(self, request: Request) -> Response:
        list_id = self._list_or_404(request)
        if isinstance(list_id, JSONResponse):
            return list_id
        body = await read_json(request)
        if isinstance(body, dict) and body.get("all") is True:
            members = [self.contacts[i] for i in sorted(self.members[list_id])]
            for contact in members:
                self._unlink(contact, list_id)
                self._touch(contact)
            process = self._new_process("remove_all_contacts_from_list")
            return JSONResponse(
                {"contacts": {"processId": process["id"], "total": len(members)}}, status_code=201
            )
        targets = self._membership_targets(body)
        if isinstance(targets, JSONResponse):
            return targets
        success, failure = self._change_membership(*targets, lambda contact: self._unlink(contact, list_id))
        return JSONResponse({"contacts": {"success": success, "failure": failure}}, status_code=201)

