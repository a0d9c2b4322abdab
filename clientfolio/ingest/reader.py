"""Load one file's rows, as text, into a DuckDB staging table.

Structural problems (a row with too many fields, an unterminated quote, bytes
that are not text) are caught by DuckDB's CSV reader and returned as rejects
with their line number; every other row lands in the table untouched.
"""

from __future__ import annotations

import bisect
import csv
import re
from dataclasses import dataclass, field

import duckdb

from clientfolio.core.errors import IngestError
from clientfolio.ingest.sniff import SHEET_COL, SHEET_ROW_COL, FileInfo
from clientfolio.ingest.sqlexpr import ident, lit

_DEFAULT_LINE = 10_000_000
_MAX_LINE = 200_000_000
CDNOW_FIELDS = {4: ["cdnow_id", "cdnow_date", "cdnow_cds", "cdnow_amount"],
                5: ["cdnow_id", "cdnow_sample_id", "cdnow_date", "cdnow_cds", "cdnow_amount"]}


@dataclass
class RawTable:
    """A staged file: text columns, `__row` (spreadsheet row, header = 1), structural rejects."""

    name: str
    header: list[str]
    rows: int
    rejects: list[tuple[int, str | None, str | None, str]] = field(default_factory=list)  # row, column, value, reason
    notes: list[str] = field(default_factory=list)
    delimiter: str = ","
    explicit_rows: bool = False  # the table carries its own row numbers (in `row_column`)
    row_column: str = "__row"
    header_rows: int = 1  # lines before the first data row (title lines + header)
    blank_rows: list[int] = field(default_factory=list)  # empty lines the CSV reader skipped (row numbers)
    # Rows taken out before mapping: (sheet or None, row, kind, reason); kind is "duplicate" (an exact
    # repeat of an earlier row) or "repeated header" (the header line again, from pasted exports).
    skipped: list[tuple[str | None, int, str, str]] = field(default_factory=list)
    # A view over the file itself (Parquet: typed, columnar, cheap to read again) rather than a copy of
    # its rows as text; its `rowid` column is the file's row number.  Made a table when rows are taken out.
    is_view: bool = False


def drop_raw(con: duckdb.DuckDBPyConnection, raw: RawTable) -> None:
    """Drop a staged file's rows (a table, or the view over a Parquet file)."""
    con.execute(f"DROP {'VIEW' if raw.is_view else 'TABLE'} IF EXISTS {raw.name}")


def materialize(con: duckdb.DuckDBPyConnection, raw: RawTable) -> None:
    """Turn a view over a file into a table of its rows, in the file's order (rowid = the row number)."""
    if not raw.is_view:
        return
    name = raw.name
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name}__m AS SELECT * EXCLUDE (rowid) FROM {name}")
    con.execute(f"DROP VIEW {name}")
    con.execute(f"ALTER TABLE {name}__m RENAME TO {name}")
    raw.is_view = False


def _header_guess(info: FileInfo) -> tuple[str | None, int]:
    """(delimiter, title lines above the header) from the first lines, by counting separators.

    Used when DuckDB's sniffer cannot decide (ragged rows, an unterminated quote, a title
    line such as 'Sales report' above the header).
    """
    import gzip

    opener = gzip.open if info.compressed else open
    with opener(info.readable, "rt", encoding="utf-8-sig", errors="replace", newline="") as fh:  # type: ignore[operator]
        lines = [fh.readline() for _ in range(30)]
    lines = [ln.rstrip("\r\n") for ln in lines]
    best: tuple[int, str | None, int] = (0, None, 0)
    for d in (",", ";", "\t", "|"):
        # count fields the way a CSV parser does, so delimiters inside quotes do not count
        counts = [_field_count(ln, d) - 1 if ln else 0 for ln in lines]
        nonzero = [c for c in counts if c]
        if not nonzero:
            continue
        mode = max(set(nonzero), key=nonzero.count)
        support = nonzero.count(mode)
        if support > best[0]:
            start = next(i for i, c in enumerate(counts) if c == mode)
            best = (support, d, start)
    return best[1], best[2]


def _field_count(line: str, delimiter: str) -> int:
    """Fields in one line as a CSV parser counts them (no limit on a field's length)."""
    old = csv.field_size_limit()
    csv.field_size_limit(max(old, len(line) + 1))
    try:
        return len(next(csv.reader([line], delimiter=delimiter), []))
    except csv.Error:  # e.g. a quote opened on this line and closed on a later one
        return 0
    finally:
        csv.field_size_limit(old)


def max_line_size(info: FileInfo) -> int:
    """DuckDB's max_line_size for this file: room for its longest line.

    DuckDB cannot reject a line longer than its limit (it stops with a wrong line number),
    so the limit is raised to fit the file; a line beyond any sensible table row is refused
    up front, naming it.
    """
    if info.longest_line > _MAX_LINE:
        raise IngestError(info.path, f"line {info.longest_line_no:,} is {info.longest_line / 1e6:,.0f} MB long, "
                          f"more than a table row can be ({_MAX_LINE // 1_000_000} MB)",
                          hint="check that the file is a table export; remove or shorten that line")
    return max(_DEFAULT_LINE, info.longest_line + (2 << 20))  # lines under 1 MiB are not measured exactly


def _csv_options(con: duckdb.DuckDBPyConnection, info: FileInfo, delimiter: str | None) -> dict[str, str]:
    path = lit(str(info.readable))
    guess_delim, skip = _header_guess(info)
    opts = {"delim": lit(delimiter)} if delimiter else {}
    opts["max_line_size"] = str(max_line_size(info))
    if skip:
        opts["skip"] = str(skip)
    extra = "".join(f", {k}={v}" for k, v in opts.items())
    try:
        sn = con.execute(f"SELECT Delimiter, Quote, Escape, HasHeader, Columns FROM sniff_csv({path}, sample_size=20480{extra})").fetchone()
        delim, quote, escape, _has_header, columns = sn
        if len(columns) == 1 and guess_delim and not delimiter:
            delim = guess_delim  # the sniffer gave up on a ragged file
    except duckdb.Error:
        if not (delimiter or guess_delim):
            raise IngestError(info.path, "cannot work out how the file is laid out (delimiter, quoting)",
                              hint="pass --delimiter if it uses an unusual separator") from None
        delim, quote, escape = delimiter or guess_delim, '"', '"'
    quote = quote if quote and len(quote) == 1 else '"'
    escape = escape if escape and len(escape) == 1 else quote
    return {"delim": delimiter or delim, "quote": quote, "escape": escape, "skip": str(skip),
            "max_line_size": opts["max_line_size"]}


def _short(exc: Exception) -> str:
    msg = str(exc).strip().splitlines()[0]
    return msg[:300]


def load_csv(con: duckdb.DuckDBPyConnection, info: FileInfo, name: str, delimiter: str | None = None) -> RawTable:
    """Read a delimited text file into `name` (all columns VARCHAR)."""
    o = _csv_options(con, info, delimiter)
    path = lit(str(info.readable))
    rej = f"{name}__rejects"
    scan = f"{name}__scans"
    con.execute(f"DROP TABLE IF EXISTS {rej}; DROP TABLE IF EXISTS {scan}")
    comp = ", compression='gzip'" if info.compressed else ""
    mls = int(o["max_line_size"])
    while True:
        sql = (
            f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM read_csv({path}, delim={lit(o['delim'])}, "
            f"quote={lit(o['quote'])}, escape={lit(o['escape'])}, header=true, all_varchar=true, skip={int(o['skip'])}, "
            f"store_rejects=true, rejects_table={lit(rej)}, rejects_scan={lit(scan)}, "
            f"null_padding=false, strict_mode=true, max_line_size={mls}{comp})"
        )
        try:
            con.execute(sql)
            break
        except duckdb.Error as exc:
            # A row longer than the limit (a quoted field spanning many lines): DuckDB stops with a wrong
            # line number instead of rejecting it, and tells the size it needed.
            need = re.search(r"Maximum line size of \d+ bytes exceeded\. Actual Size:\s*(\d+)", str(exc))
            if need and mls < int(need.group(1)) <= _MAX_LINE:
                mls = int(need.group(1)) + (1 << 20)
                continue
            if need:
                start = re.search(r"Original Line:\s*(.{0,60})", str(exc))
                raise IngestError(info.path, f"a row is {int(need.group(1)) / 1e6:,.0f} MB long, more than a table row "
                                  f"can be ({_MAX_LINE // 1_000_000} MB)", value=start.group(1) if start else None,
                                  hint="a quote (\") opened in that row may never be closed; fix or remove it") from None
            text = _short(exc)
            if "sniffing" in text.lower() or "quote" in text.lower():
                raise IngestError(info.path, "cannot be read as a CSV table: a quote (\") seems to be opened and never "
                                  "closed, so rows cannot be told apart", hint="open the file in a spreadsheet and "
                                  "save it again as CSV, or remove the stray quote") from None
            raise IngestError(info.path, "cannot be read as a CSV table", hint=text) from None
    header = [r[0] for r in con.execute(f"DESCRIBE {name}").fetchall()]
    n = con.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
    rejects = []
    bad_at = [off for off, _ in info.bad_bytes]
    for line, col, err_type, csv_line, msg, pos in con.execute(
        f"SELECT line, column_name, error_type, csv_line, error_message, line_byte_position FROM {rej} ORDER BY line"
    ).fetchall():
        reason = _reject_reason(err_type, msg)
        if str(err_type).upper() in ("INVALID UNICODE", "INVALID ENCODING") and pos is not None:
            k = bisect.bisect_left(bad_at, int(pos) - 1)
            if k < len(bad_at):
                reason = (f"byte 0x{info.bad_bytes[k][1]:02X} is not valid UTF-8, the encoding of the rest of the file "
                          "(text pasted from a Windows/Latin-1 source?); retype the character in this row and "
                          "import the file again")
        rejects.append((int(line), col, (csv_line or "").lstrip("\r\n")[:200], reason))
    # The same line can be reported twice (e.g. a cast and a column count error); keep the first.
    seen: set[int] = set()
    rejects = [r for r in rejects if not (r[0] in seen or seen.add(r[0]))]
    con.execute(f"DROP TABLE IF EXISTS {rej}; DROP TABLE IF EXISTS {scan}")
    notes = [f"skipped {o['skip']} title line(s) above the header"] if int(o["skip"]) else []
    if SHEET_ROW_COL in header:  # converted from a workbook: rows are counted per sheet
        header.remove(SHEET_ROW_COL)
        return RawTable(name, header, int(n), rejects, notes, delimiter=o["delim"], explicit_rows=True,
                        row_column=SHEET_ROW_COL)
    dupes = [h for h in header if re.fullmatch(r".+_\d+", h) and re.sub(r"_\d+$", "", h) in header]
    if dupes:
        notes.append(f"the header repeats column name(s) {', '.join(dupes)}; the first of each is used")
    raw = RawTable(name, header, int(n), rejects, notes, delimiter=o["delim"], header_rows=1 + int(o["skip"]))
    if info.blank_lines:
        raw.blank_rows = _blank_records(info, o)
    return raw


def _blank_records(info: FileInfo, o: dict[str, str]) -> list[int]:
    """Row numbers of empty lines below the header, counted as DuckDB counts rows (a quoted line
    break does not start a row). DuckDB skips them, so later rows are numbered past them."""
    import gzip

    opener = gzip.open if info.compressed else open
    old = csv.field_size_limit()
    csv.field_size_limit(max(old, int(o["max_line_size"])))
    try:
        with opener(info.readable, "rt", encoding="utf-8", errors="replace", newline="") as fh:  # type: ignore[operator]
            reader = csv.reader(fh, delimiter=o["delim"], quotechar=o["quote"],
                                doublequote=o["escape"] == o["quote"],
                                escapechar=None if o["escape"] == o["quote"] else o["escape"])
            first = 1 + int(o["skip"])
            return [i for i, rec in enumerate(reader, start=1) if not rec and i > first]
    except csv.Error:
        return []  # numbering as DuckDB gives it
    finally:
        csv.field_size_limit(old)


def _reject_reason(err_type: str, msg: str) -> str:
    kinds = {
        "TOO MANY COLUMNS": "the row has more fields than the header (a stray delimiter or unquoted text?)",
        "MISSING COLUMNS": "the row has fewer fields than the header",
        "UNQUOTED VALUE": "a quoted field is followed by unquoted text",
        "LINE SIZE OVER MAXIMUM": "the row is longer than the longest line of the file (a quoted field "
                                  "spanning many lines?)",
        "INVALID UNICODE": "the row contains bytes that are not valid text in the file's encoding",
        "INVALID ENCODING": "the row contains bytes that are not valid text in the file's encoding",
        "UNTERMINATED QUOTE": "a quote is opened and never closed (the rest of the file may be swallowed)",
    }
    return kinds.get(str(err_type).upper(), f"unreadable row: {str(msg).splitlines()[0][:200]}")


def load_whitespace(con: duckdb.DuckDBPyConnection, info: FileInfo, name: str) -> RawTable:
    """Read a whitespace-separated log (CDNOW) into `name` with cdnow_* columns."""
    path = lit(str(info.readable))
    comp = ", compression='gzip'" if info.compressed else ""
    lines = f"{name}__lines"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {lines} AS SELECT regexp_split_to_array(trim(line), '\\s+') AS f, trim(line) AS line "
        f"FROM read_csv({path}, columns={{'line': 'VARCHAR'}}, delim='\\x01', quote='', escape='', header=false, "
        f"auto_detect=false{comp})"
    )
    first = con.execute(f"SELECT f FROM {lines} WHERE line <> '' LIMIT 1").fetchone()
    if first is None:
        raise IngestError(info.path, "the file has no rows")
    has_header = not any(ch.isdigit() for ch in first[0][0])
    counts = con.execute(
        f"SELECT len(f) AS n, count(*) FROM {lines} WHERE line <> '' GROUP BY 1 ORDER BY 2 DESC"
    ).fetchall()
    width = next((n for n, _ in counts if n in CDNOW_FIELDS), None)
    if width is None:
        raise IngestError(info.path, "a whitespace-separated file must have 4 fields (customer, YYYYMMDD date, "
                          "quantity, amount) or 5 (with a sample id)", value=first[1] if len(first) > 1 else None)
    names = CDNOW_FIELDS[width]
    cols = ", ".join(f"f[{i + 1}] AS {ident(c)}" for i, c in enumerate(names))
    skip = 1 if has_header else 0
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {name}__all AS SELECT rowid AS __i, f, line FROM {lines}"
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT {cols}, __i + 1 AS __row FROM {name}__all "
        f"WHERE __i >= {skip} AND line <> '' AND len(f) = {width} ORDER BY __i"
    )
    bad = con.execute(
        f"SELECT __i + 1, line FROM {name}__all WHERE __i >= {skip} AND line <> '' AND len(f) <> {width} ORDER BY __i"
    ).fetchall()
    n = con.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
    con.execute(f"DROP TABLE {lines}; DROP TABLE {name}__all")
    rejects = [(int(i), None, line[:200], f"expected {width} whitespace-separated fields, found {len(line.split())}")
               for i, line in bad]
    notes = ["whitespace-separated" + (" with a header line" if has_header else ", no header line")]
    return RawTable(name, names, int(n), rejects, notes, delimiter=" ", explicit_rows=True)


def load_parquet(con: duckdb.DuckDBPyConnection, info: FileInfo, name: str) -> RawTable:
    path = lit(str(info.readable))
    try:
        desc = con.execute(f"DESCRIBE SELECT * FROM read_parquet({path})").fetchall()
    except duckdb.Error as exc:
        raise IngestError(info.path, "cannot be read as Parquet", hint=_short(exc)) from None
    cols = ", ".join(
        f"CASE WHEN {ident(c)} IS NULL THEN NULL ELSE CAST({ident(c)} AS VARCHAR) END AS {ident(c)}" for c, *_ in desc
    )
    if {c.lower() for c, *_ in desc} & {"rowid", "file_row_number"}:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT {cols} FROM read_parquet({path})")
        view = False
    else:
        # No copy of the rows: the checks read the file (as text, the same values a copy would hold) through
        # a view, so a 10M-order file does not sit in memory as text next to its checked rows.
        con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT {cols}, file_row_number AS rowid "
                    f"FROM read_parquet({path}, file_row_number = true)")
        view = True
    n = con.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
    return RawTable(name, [c for c, *_ in desc], int(n), is_view=view)


def _clear(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """Drop what an import that failed on this connection left under `name` (a table or a view):
    DuckDB will not replace one kind by the other."""
    for kind, catalog, col in (("VIEW", "duckdb_views()", "view_name"), ("TABLE", "duckdb_tables()", "table_name")):
        if con.execute(f"SELECT count(*) FROM {catalog} WHERE database_name = 'temp' AND {col} = ?",
                       [name]).fetchall()[0][0]:
            con.execute(f"DROP {kind} {name}")


def load(con: duckdb.DuckDBPyConnection, info: FileInfo, name: str, delimiter: str | None = None,
         keep_repeated_lines: bool = False) -> RawTable:
    """Stage one file's rows as text, without the artefacts of files pasted together."""
    _clear(con, name)
    if info.kind == "whitespace":
        raw = load_whitespace(con, info, name)
    elif info.kind == "parquet":
        raw = load_parquet(con, info, name)
    else:
        raw = load_csv(con, info, name, delimiter)
    raw.notes = list(info.notes) + raw.notes
    number_rows(con, raw)
    if info.kind == "whitespace" and not keep_repeated_lines:
        # A purchase log without order ids or times (CDNOW): identical lines are separate purchases,
        # and the published figures for these data sets count every line.
        keep_repeated_lines = True
        n = _repeats(con, raw, "FALSE")
        if n:
            raw.notes.append(f"{n:,} identical line(s) kept: in a purchase log each line is one purchase")
    drop_artefacts(con, raw, header_lines=info.kind in ("csv", "xlsx"), repeats=not keep_repeated_lines)
    return raw


def _data_columns(raw: RawTable) -> list[str]:
    return [h for h in raw.header if h not in (SHEET_COL, SHEET_ROW_COL, "__row")]


def _repeats(con: duckdb.DuckDBPyConnection, raw: RawTable, header_sql: str) -> int:
    """Rows that repeat an earlier row exactly (all data columns equal, empty equals empty)."""
    cols = ", ".join(ident(c) for c in _data_columns(raw))
    return con.execute(f"SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM {raw.name} "
                       f"WHERE NOT ({header_sql}) GROUP BY {cols} HAVING count(*) > 1)").fetchone()[0]


def _header_line_sql(raw: RawTable) -> str:
    """True for a row that holds the header line again, exactly.

    DuckDB names a repeated column 'x' as 'x_1' and an unnamed one 'columnN'; the header line
    holds 'x' and nothing there.  A row hash is compared first, so the test costs one hash.
    """
    cols = _data_columns(raw)
    if len(cols) < 2:
        return "FALSE"
    vals = []
    for h in cols:
        base = re.sub(r"_\d+$", "", h)
        vals.append(None if re.fullmatch(r"column\d+", h) else base if base != h and base in cols else h)
    lits = [lit(v) if v is not None else "NULL::VARCHAR" for v in vals]
    same = " AND ".join(f"{ident(c)} IS NOT DISTINCT FROM {v}" for c, v in zip(cols, lits))
    return f"(hash({', '.join(ident(c) for c in cols)}) = hash({', '.join(lits)}) AND {same})"


def drop_artefacts(con: duckdb.DuckDBPyConnection, raw: RawTable, header_lines: bool = True,
                   repeats: bool = True) -> None:
    """Take repeated header lines and exact repeated rows out of the staged table, into `raw.skipped`.

    Both are what pasting two overlapping exports together leaves behind: the second header
    would become a bad row, and every repeated order line would count its revenue twice.  Each
    removed row is named (with the row it repeats), so the accounting still balances.  When
    rows are removed the table gets explicit row numbers (`__row`).  One pass over a row hash
    decides whether there is anything to do; the exact comparisons run only when there is.
    """
    hdr = _header_line_sql(raw) if header_lines else "FALSE"
    if hdr == "FALSE" and not repeats:
        return
    cols = ", ".join(ident(c) for c in _data_columns(raw))
    dup_count = f"count(*) - count(DISTINCT hash({cols}))" if repeats else "0"
    maybe_hdr, maybe_dup = con.execute(
        f"SELECT count(*) FILTER (WHERE {hdr}), {dup_count} FROM {raw.name}").fetchone()
    n_hdr = maybe_hdr
    n_dup = _repeats(con, raw, hdr) if repeats and maybe_dup else 0
    if not n_hdr and not n_dup:
        return
    materialize(con, raw)
    name = raw.name
    rownum = row_numbers_sql(raw)
    part = ident(SHEET_COL) if SHEET_COL in raw.header else "NULL::VARCHAR"
    cols = _data_columns(raw)
    on = " AND ".join(f"r.{ident(c)} IS NOT DISTINCT FROM m.{ident(c)}" for c in cols)
    dup_sql = (f"""UNION ALL SELECT r.rowid, 'duplicate', m.__first FROM {name} AS r
        JOIN (SELECT {', '.join(ident(c) for c in cols)}, min(rowid) AS __first FROM {name} WHERE NOT ({hdr})
              GROUP BY ALL HAVING count(*) > 1) AS m ON {on}
        WHERE r.rowid > m.__first""" if n_dup else "")
    con.execute(f"""CREATE OR REPLACE TEMP TABLE {name}__skip AS
        SELECT rowid AS __i, 'repeated header' AS kind, NULL::BIGINT AS __first FROM {name} WHERE {hdr}
        {dup_sql}""")
    con.execute(f"""CREATE OR REPLACE TEMP TABLE {name}__num AS
        SELECT rowid AS __i, {rownum} AS __r, {part} AS __p FROM {name} SEMI JOIN
        (SELECT __i FROM {name}__skip UNION SELECT __first FROM {name}__skip) AS k ON rowid = k.__i""")
    for kind, row, sheet, first, first_sheet in con.execute(f"""
            SELECT s.kind, a.__r, a.__p, b.__r, b.__p FROM {name}__skip s JOIN {name}__num a ON a.__i = s.__i
            LEFT JOIN {name}__num b ON b.__i = s.__first ORDER BY s.__i""").fetchall():
        if kind == "duplicate":
            where = f"row {first}" if first_sheet == sheet else f"sheet {first_sheet!r} row {first}"
            reason = (f"exact repeat of {where} (counted once; pass --keep-repeated-lines if identical lines "
                      "are separate sales)")
        else:
            reason = "the header line again (exports pasted together?): not a data row"
        raw.skipped.append((sheet, int(row), kind, reason))
    keep_num = "" if raw.explicit_rows else f", {rownum} AS __row"
    con.execute(f"""CREATE OR REPLACE TEMP TABLE {name} AS SELECT *{keep_num} FROM {name}
        WHERE rowid NOT IN (SELECT __i FROM {name}__skip) ORDER BY rowid""")
    con.execute(f"DROP TABLE {name}__skip; DROP TABLE {name}__num")
    if not raw.explicit_rows:
        raw.explicit_rows, raw.row_column = True, "__row"
    raw.rows -= n_hdr + n_dup
    if n_dup:
        raw.notes.append(f"{n_dup:,} exact repeated row(s) counted once (listed in the rejects file as duplicates; "
                         "--keep-repeated-lines keeps them)")


def _missing_rows(raw: RawTable) -> list[int]:
    """Row numbers with no staged row: rejected by DuckDB, or empty lines it skipped."""
    return sorted({r[0] for r in raw.rejects} | set(raw.blank_rows))


def row_numbers_sql(raw: RawTable) -> str:
    """Expression giving each staged row its row number in the file (header = row 1).

    Rows DuckDB rejected and empty lines it skipped are not in the table, so later rows
    are shifted by the number of such rows before them.
    """
    if raw.explicit_rows:
        return f"CAST({ident(raw.row_column)} AS BIGINT)"
    header_rows = raw.header_rows
    base = f"(rowid + {header_rows + 1})"
    missing = _missing_rows(raw)
    if not missing:
        return base
    # adjusted thresholds: the j-th missing row (0-based) shifts every staged row index >= row_j - header - 1 - j
    thresholds = [m - header_rows - 1 - j for j, m in enumerate(missing)]
    arr = "[" + ", ".join(str(t) for t in thresholds) + "]"
    return f"({base} + len(list_filter({arr}, lambda x: x <= rowid)))"


def number_rows(con: duckdb.DuckDBPyConnection, raw: RawTable) -> None:
    """Give the staged table explicit row numbers (`__row`) when many rows are missing from it.

    `row_numbers_sql` compares every row with every missing row; beyond a few dozen an as-of
    join on the sorted thresholds does the same in one pass.
    """
    missing = _missing_rows(raw)
    if raw.explicit_rows or len(missing) <= 64:
        return
    thresholds = [m - raw.header_rows - 1 - j for j, m in enumerate(missing)]
    materialize(con, raw)
    name = raw.name
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name}__shift AS SELECT * FROM "
                f"(SELECT unnest(?::BIGINT[]) AS t, generate_series(1, ?) AS k)", [thresholds, len(thresholds)])
    con.execute(f"""CREATE OR REPLACE TEMP TABLE {name} AS
        SELECT d.* EXCLUDE (__i), d.__i + {raw.header_rows + 1} + coalesce(m.k, 0) AS __row
        FROM (SELECT *, rowid AS __i FROM {name}) AS d ASOF LEFT JOIN {name}__shift AS m ON d.__i >= m.t
        ORDER BY d.__i""")
    con.execute(f"DROP TABLE {name}__shift")
    raw.explicit_rows, raw.row_column = True, "__row"
