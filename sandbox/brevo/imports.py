"""Asynchronous contact imports with their processes and reports, and batch updates."""

from __future__ import annotations

import asyncio
import csv
import io
import secrets

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox.brevo.common import (
    BATCH_LIMIT,
    IMPORT_REPORTS,
    PROCESSES_PAGE_MAX,
    bad,
    brevo_error,
    email_problem,
    is_int_list,
    page_params,
)
from sandbox.core import read_json


class ImportsApi:
    """``/v3/contacts/import``, ``/v3/contacts/batch`` and ``/v3/processes``."""

    @staticmethod
    def _csv_rows(text: str) -> list[dict] | None:
        """``fileBody``: semicolon-separated, first line the header with EMAIL and attribute names."""
        reader = csv.reader(io.StringIO(text), delimiter=";")
        header = next(reader, None)
        if not header:
            return None
        header = [h.strip().upper() for h in header]
        if "EMAIL" not in header:
            return None
        rows = []
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue
            values = dict(zip(header, cells, strict=False))
            email = values.pop("EMAIL", "")
            rows.append({"email": email, "attributes": values})
        return rows

    async def _rows(self, body: dict) -> list[dict] | JSONResponse:
        sources = [k for k in ("jsonBody", "fileBody", "fileUrl") if body.get(k) not in (None, "", [])]
        if not sources:
            return bad("missing_parameter", "One of jsonBody, fileBody or fileUrl is required")
        if len(sources) > 1:
            return bad("invalid_parameter", "Send only one of jsonBody, fileBody and fileUrl")
        if "jsonBody" in sources:
            rows = body["jsonBody"]
            if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
                return bad("invalid_parameter", "jsonBody must be a list of contact objects")
            return rows
        if "fileBody" in sources:
            text = body["fileBody"]
        else:
            url = body["fileUrl"]
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                return bad(
                    "invalid_parameter", "fileUrl must be an http(s) URL of a .csv, .txt or .json file"
                )
            try:
                async with httpx.AsyncClient(timeout=10) as client:
                    fetched = await client.get(url)
                fetched.raise_for_status()
            except httpx.HTTPError:
                return bad("invalid_parameter", "fileUrl could not be downloaded")
            if url.split("?")[0].endswith(".json"):
                try:
                    rows = fetched.json()
                except ValueError:
                    rows = None
                if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
                    return bad("invalid_parameter", "The JSON file must hold a list of contact objects")
                return rows
            text = fetched.text
        rows = self._csv_rows(text) if isinstance(text, str) else None
        if rows is None:
            return bad(
                "invalid_parameter", "The file needs a header line with an EMAIL column, separated by ';'"
            )
        return rows

    async def import_contacts(self, request: Request) -> Response:
        """Upsert many contacts into lists: 202 with a queued process, applied in the background."""
        body = await read_json(request)
        if not isinstance(body, dict):
            return bad("bad_request", "Input must be a valid JSON object")
        list_ids = body.get("listIds")
        new_list = body.get("newList")
        if not list_ids and not new_list:
            return bad("missing_parameter", "listIds or newList is required")
        if list_ids is not None and (not is_int_list(list_ids) or self._unknown_lists(list_ids)):
            return bad("invalid_parameter", f"listIds must be existing list ids: {list_ids}")
        if new_list is not None and (
            not isinstance(new_list, dict)
            or not new_list.get("listName")
            or new_list.get("folderId") not in self.folders
        ):
            return bad("invalid_parameter", "newList needs a listName and an existing folderId")
        rows = await self._rows(body)
        if isinstance(rows, JSONResponse):
            return rows
        targets = list(list_ids or [])
        if new_list:
            targets.append(self._new_list(new_list["listName"], new_list["folderId"]))
        process = self._new_process("IMPORTUSER", "queued")
        token = secrets.token_urlsafe(16)
        report_urls = {kind: str(request.url_for("brevo_import_report", token=token, kind=kind))
                       for kind in IMPORT_REPORTS}
        task = asyncio.get_running_loop().create_task(
            self._run_import(process, rows, targets, body, token, report_urls)
        )
        self._imports.add(task)
        task.add_done_callback(self._imports.discard)
        return JSONResponse({"processId": process["id"]}, status_code=202)

    async def _run_import(
        self, process: dict, rows: list[dict], targets: list[int], options: dict, token: str, urls: dict
    ) -> None:
        """queued, then in_process, then applied in one step and completed with its reports."""
        await asyncio.sleep(self.import_delay)
        process["status"] = "in_process"
        await asyncio.sleep(self.import_delay)
        skipped = self._apply_import(rows, targets, options)
        self.reports[token] = {kind: self._report_csv(lines) for kind, lines in skipped.items()}
        process["status"] = "completed"
        process["info"] = {"import": {kind: urls[kind] if kind in skipped else None for kind in IMPORT_REPORTS}}

    def _apply_import(self, rows: list[dict], targets: list[int], options: dict) -> dict[str, list]:
        """Apply the rows Brevo takes; returns the skipped ones as ``{report kind: [(email, reason)]}``."""
        update_existing = options.get("updateExistingContacts", True) is not False
        erase_empty = options.get("emptyContactsAttributes", False) is True
        skipped: dict[str, list[tuple[str, str]]] = {}
        emails_seen: set[str] = set()
        ext_ids_seen: set[str] = set()
        for row in rows:
            raw_email = row.get("email")
            email = raw_email.strip().lower() if isinstance(raw_email, str) else ""
            ext_id = row.get("ext_id") if isinstance(row.get("ext_id"), str) and row.get("ext_id") else None
            problem = email_problem(email) if email else "no email address"
            if problem:
                skipped.setdefault("invalid_emails", []).append((str(raw_email or ""), problem))
                continue
            if email in emails_seen:
                skipped.setdefault("duplicate_email_id", []).append(
                    (email, "email repeated in the import; its first row was taken"))
                continue
            emails_seen.add(email)
            contact = self._find(email, "email_id")
            if ext_id is not None:
                holder = self.by_ext_id.get(ext_id)
                if ext_id in ext_ids_seen or (holder is not None and (contact is None or holder != contact.id)):
                    skipped.setdefault("duplicate_ext_id", []).append(
                        (email, f"ext_id {ext_id!r} belongs to another contact"))
                    continue
                ext_ids_seen.add(ext_id)
            attributes = row.get("attributes") if isinstance(row.get("attributes"), dict) else {}
            if contact is None:
                contact = self._new_contact(email, ext_id)
                self._apply_attributes(contact, attributes, lenient=True, clear_empty=False)
            elif update_existing:
                self._apply_attributes(contact, attributes, lenient=True, clear_empty=erase_empty)
                self._touch(contact)
            else:
                continue
            for list_id in targets:
                self._link(contact, list_id)
            if options.get("emailBlacklist") is True:
                contact.email_blacklisted = True
            if options.get("smsBlacklist") is True:
                contact.sms_blacklisted = True
        return skipped

    @staticmethod
    def _report_csv(lines: list[tuple[str, str]]) -> str:
        text = io.StringIO()
        writer = csv.writer(text, delimiter=";", lineterminator="\n")
        writer.writerow(("EMAIL", "REASON"))
        writer.writerows(lines)
        return text.getvalue()

    async def import_report(self, request: Request) -> Response:
        """A report file of a completed import (no API key: the URL itself is the credential)."""
        report = self.reports.get(request.path_params["token"], {}).get(request.path_params["kind"])
        if report is None:
            return brevo_error(404, "document_not_found", "Report does not exist")
        return Response(report, media_type="text/csv")

    async def batch_update(self, request: Request) -> Response:
        """Updates only (no creates): 204 when every item applied, else 207 with the ids that failed."""
        body = await read_json(request)
        items = body.get("contacts") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            return bad("missing_parameter", "contacts must be a non-empty list")
        if len(items) > BATCH_LIMIT:
            return bad("out_of_range", f"At most {BATCH_LIMIT} contacts per request")
        success, failure = [], []
        for item in items:
            keys = [
                k for k in ("email", "id", "sms") if isinstance(item, dict) and item.get(k) not in (None, "")
            ]
            if len(keys) != 1:
                failure.append(None)
                continue
            identifier = item[keys[0]]
            kind = {"email": "email_id", "id": "contact_id", "sms": "phone_id"}[keys[0]]
            contact = self._find(str(identifier), kind)
            if contact is None or self._change_problem(item) is not None:
                failure.append(identifier)
                continue
            self._change(contact, item)
            success.append(contact.id)
        if not failure:
            return Response(status_code=204)
        return JSONResponse({"successIds": success, "failureIds": failure}, status_code=207)

    def _new_process(self, name: str, status: str = "completed") -> dict:
        process = {"id": next(self.ids["process"]), "status": status, "name": name}
        self.processes[process["id"]] = process
        return process

    async def get_process(self, request: Request) -> Response:
        raw = request.path_params["process_id"]
        process = self.processes.get(int(raw)) if raw.isdigit() else None
        if process is None:
            return brevo_error(404, "document_not_found", "Process does not exist")
        return JSONResponse(process)

    async def list_processes(self, request: Request) -> Response:
        """``limit`` (default 10, at most 50), ``offset``, ``sort`` by creation (default desc)."""
        page = page_params(request, 10, PROCESSES_PAGE_MAX)
        if isinstance(page, JSONResponse):
            return page
        limit, offset, newest_first = page
        ids = sorted(self.processes, reverse=newest_first)[offset : offset + limit]
        return JSONResponse({"processes": [self.processes[i] for i in ids], "count": len(self.processes)})

