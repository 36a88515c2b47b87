"""The REST API's parameter types, and how a request that does not fit them is answered.

Every query, path and body parameter of a route is declared with one of these types (or
a pydantic model made of them), so FastAPI checks it against the same schema that
covalent/_wire/schema.py gives the manifest: integers fit a database column, seconds
are finite, digests are digests. A request that does not fit gets 422 with one sentence
naming the field (:func:`refuse`), never a 5xx.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from covalent._wire.schema import MAX_INT, describe

Offset = Annotated[int, Query(ge=0, le=MAX_INT, description="rows to skip")]
Limit = Annotated[int, Query(ge=1, le=MAX_INT, description="rows to return (capped)")]
Lines = Annotated[int, Query(ge=1, le=MAX_INT, description="log lines (capped)")]
WaitSeconds = Annotated[
    float, Query(ge=0, allow_inf_nan=False, description="seconds to wait (capped)")
]
BeatSeconds = Annotated[
    float, Query(gt=0, allow_inf_nan=False, description="seconds between heartbeats (capped)")
]
Timestamp = Annotated[float | None, Query(allow_inf_nan=False, description="UNIX seconds")]
NodeId = Annotated[int, Path(ge=0, le=MAX_INT)]
MAX_DASK_WORKERS = 1024


async def refuse(request: Request, error: RequestValidationError) -> JSONResponse:
    """422 naming the first parameter that does not fit (``query.offset``), in the
    answer every CovalentError gets: ``{"detail", "error", "field"}``."""
    problems = error.errors()
    first = problems[0] if problems else {"loc": (), "msg": "the request is not valid"}
    field = describe(tuple(first.get("loc", ())))
    more = f"; {len(problems) - 1} more field(s) are wrong too" if len(problems) > 1 else ""
    detail = f"The request's field {field} is not valid: {first.get('msg', '')}{more}."
    return JSONResponse(
        {"detail": detail, "error": "InvalidFieldError", "field": field}, status_code=422
    )
