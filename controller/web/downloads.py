"""A report as JSON and as a download: one factory for the `…`, `….csv` and `….xlsx` routes.

A report is a query (its URL parameters, a FastAPI dependency answering the computation
to run) and the roles that may read it. The three routes take the same parameters and
compute the same rows off the event loop; the files carry them as a sheet with the file
name the computation gives, in the words of `export_words` (Chinese headers and values,
plain times: the files go to the hall's leadership), while the JSON keeps them as computed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any, Awaitable, Callable

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from controller.backoffice import evaluation_reports as er
from controller.backoffice.export_words import file_rows
from controller.core.hall import StaffRole
from controller.store.sessions import Session
from controller.web.auth import API, SessionDependency

CSV = "text/csv; charset=utf-8"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

Rows = list[dict[str, Any]]
# The report's rows and its file name without the extension (e.g. hall-service-20261123-20261130)
Computation = Callable[[], tuple[Rows, str]]
# A FastAPI dependency taking the report's URL parameters; it only builds the computation
# (`async def`: a plain one would cost a thread hop), the routes run it in a thread.
ReportQuery = Callable[..., Awaitable[Computation]]


def download(body: bytes, media_type: str, filename: str) -> Response:
    # ASCII file names: every browser and Excel version takes them as they are
    return Response(body, media_type=media_type,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


async def as_file(rows: Rows, name: str, fmt: str, sheet: str, zone: dt.tzinfo) -> Response:
    """`rows` in the files' words as `name`.csv, or as `name`.xlsx with one sheet (built off
    the event loop); times shown in `zone`, the hall's."""
    table = file_rows(rows, sheet, zone)
    if fmt == "csv":
        return download(er.to_csv(table), CSV, f"{name}.csv")
    return download(await asyncio.to_thread(er.to_xlsx, table, sheet), XLSX, f"{name}.xlsx")


def report_route(r: APIRouter, session: SessionDependency, *, path: str, name: str, summary: str,
                 file_summary: str, query: ReportQuery, readers: tuple[StaffRole, ...], sheet: str,
                 zone: dt.tzinfo) -> None:
    """GET `path` (JSON rows), `path`.csv and `path`.xlsx on `r`.

    `file_summary` is the files' summary with {} for CSV or Excel; `sheet` the Excel sheet's
    name, which also picks the words a sheet names apart (`export_words.IN_SHEET`); `zone`
    the hall's, for the files' times."""

    @r.get(f"{API}/{path}", tags=["reports"], summary=summary, name=name)
    async def as_json(computation: Computation = Depends(query),
                      s: Session = Depends(session)) -> list[dict[str, Any]]:
        s.require(*readers)
        rows, _ = await asyncio.to_thread(computation)
        return rows

    @r.get(f"{API}/{path}.csv", tags=["reports"], summary=file_summary.format("CSV"),
           name=f"{name}_file")
    @r.get(f"{API}/{path}.xlsx", tags=["reports"], summary=file_summary.format("Excel"),
           name=f"{name}_file")
    async def as_download(request: Request, computation: Computation = Depends(query),
                          s: Session = Depends(session)) -> Response:
        s.require(*readers)
        rows, filename = await asyncio.to_thread(computation)
        # one handler serves both paths: the extension picks the file
        return await as_file(rows, filename, request.url.path.rsplit(".", 1)[1], sheet, zone)
