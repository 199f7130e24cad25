"""Lead CSV files in and out: a streaming reader that turns rows into `LeadInput`s, and the
writer `leadline leads export` uses.

The stdlib `csv` module does the parsing: it works a row at a time (a 100 MB file needs
no more memory than its longest record), implements RFC 4180 quoting — quoted commas,
doubled quotes, newlines inside quoted fields — and costs no dependency. pandas would
load the whole file into a frame for a job that is one row at a time.

What the reader decides, and why:

- Rows are numbered 1, 2, … over DATA rows: the header and blank lines (also lines of
  empty cells, as spreadsheets leave behind) are not rows. File-level errors also give
  the physical line, for editors.
- The whole file is checked before the first row is handed out: pass one parses every
  record and normalises every phone, pass two yields the rows. A file that is not UTF-8,
  has broken quoting (an unterminated quote would swallow the rest of the file into one
  cell), a NUL byte or a runaway record raises `LeadFileError` naming the row, and
  nothing has been imported yet: a mis-encoded file would otherwise store garbled names
  for every row before the bad byte. Pass one also finds the last row of every phone, so
  a phone that appears twice becomes ONE lead — the later row wins whole, the earlier
  is dropped with a warning naming both rows — without holding rows in memory: 9 bytes
  a row (its phone as an integer, so pass two does not normalise it again) and the
  repeated rows.
- Headers are matched through the alias table in sms/csv_headers.toml; unknown columns
  become attributes under their original header. A file that starts with our export
  columns (`EXPORT_COLUMNS`) is read by that exact layout instead, so an attribute
  named like an alias ("Mobile", "Full Name") stays an attribute and export → import
  gives back every field.
- Row-level problems never stop the import: no usable phone skips the row (an error);
  a bad email or unknown state drops that value (a warning) and keeps the lead.
- Memory is bounded per record (`MAX_RECORD_BYTES`, checked while reading lines, so
  even a file without a single newline is refused early) and per value
  (`MAX_FIELD_CHARS`). csv's own `field_size_limit` is process-wide, so it is left
  alone; these bounds are tighter and local to this reader.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import re
import tomllib
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import IO, Any, BinaryIO

import msgspec

from store.database import (
    MAX_ATTRIBUTE_KEY,
    MAX_ATTRIBUTE_VALUE,
    MAX_ATTRIBUTES,
    MAX_FIELD_LENGTH,
    MAX_NAME_LENGTH,
)
from store.models import Lead, LeadInput
from store.phones import InvalidPhoneNumber, normalize_phone

# One record (a row, including the newlines of its quoted cells) larger than this is not a
# lead: it is an unterminated quote eating the file, or not a CSV at all.
MAX_RECORD_BYTES = 1 << 20
# A cell longer than this skips its row: it is a runaway (a quote swallowing lines), not a
# value. Kept values are bounded further by the store's limits (MAX_ATTRIBUTE_VALUE …).
MAX_FIELD_CHARS = 4096
# Longest first/last name kept: the store's caller-name bound (a lead is a caller too).
MAX_NAME_CHARS = MAX_NAME_LENGTH
# More columns than this is a spreadsheet accident (or an attack on the attributes map).
MAX_COLUMNS = 1024
# How often (in records) the progress callback is told where the reader is.
PROGRESS_EVERY = 1000

# The columns `write_leads` writes first, in this order. A file starting with exactly these
# is our own export and is read by that layout; its `status` column is ignored (the store
# owns a lead's status, an import never sets it).
EXPORT_COLUMNS: tuple[str, ...] = (
    "phone", "first_name", "last_name", "email", "state", "status", "source",
)

_KEY_JUNK = re.compile(r"[\s\-_.]+")
_STATE_JUNK = re.compile(r"[\s.]+")


class LeadFileError(ValueError):
    """The file as a whole cannot be imported (encoding, quoting, size, header).

    `row` is the data row being read when it failed (0: the header), `line` the physical
    line (1-based) where that record starts; the message already names both.
    """

    def __init__(self, message: str, *, row: int, line: int) -> None:
        super().__init__(message)
        self.row = row
        self.line = line


class RowIssue(msgspec.Struct, frozen=True):
    """A problem with one value of one row; `field` is the lead field (or the header of an
    attribute column), `reason` says what was wrong in words an ops person can act on."""

    row: int
    field: str
    reason: str


class RowResult(msgspec.Struct, frozen=True):
    """One data row: `lead` to upsert, or None when the row is skipped (`errors` says why)
    or superseded by a later row with the same phone (`duplicate_of`, and a warning)."""

    row: int
    lead: LeadInput | None
    warnings: tuple[RowIssue, ...] = ()
    errors: tuple[RowIssue, ...] = ()
    duplicate_of: int | None = None


# rules tables -------------------------------------------------------------------------


def header_key(header: str) -> str:
    """The form headers are compared in: case, spaces, hyphens, underscores, dots ignored."""
    return _KEY_JUNK.sub("", header.casefold())


@cache
def header_aliases() -> dict[str, str]:
    """Normalised header → lead field, from sms/csv_headers.toml."""
    table = tomllib.loads(resources.files("sms").joinpath("csv_headers.toml").read_text("utf-8"))
    aliases: dict[str, str] = {}
    for lead_field, spellings in table["fields"].items():
        for spelling in [lead_field, *spellings]:
            key = header_key(spelling)
            if aliases.setdefault(key, lead_field) != lead_field:
                raise ValueError(f"csv_headers.toml: {spelling!r} is listed for two fields")
    return aliases


@cache
def state_codes() -> dict[str, str]:
    """Normalised state name or code → two-letter code, from sms/us_states.toml."""
    table = tomllib.loads(resources.files("sms").joinpath("us_states.toml").read_text("utf-8"))
    codes: dict[str, str] = {}
    for code, names in table["codes"].items():
        for name in [code, *names]:
            codes[_state_key(name)] = code
    return codes


def _state_key(value: str) -> str:
    return _STATE_JUNK.sub(" ", value).strip().casefold()


def normalize_state(value: str) -> str:
    """Two-letter code for a state/province code or full name; ValueError if unknown."""
    code = state_codes().get(_state_key(value))
    if code is None:
        raise ValueError(f"unknown US state or Canadian province: {_shown(value)}")
    return code


def normalize_email(value: str) -> str:
    """The address in normalised form (domain lowercased, Unicode NFC); ValueError if it is
    not a syntactically valid address.

    email-validator implements the RFC 5321/5322 address grammar with the IDNA and
    length rules mail servers apply, which a home-made regex gets wrong both ways.
    `check_deliverability=False`: no DNS lookups during an import.
    """
    from email_validator import EmailNotValidError, validate_email

    try:
        return str(validate_email(value, check_deliverability=False).normalized)
    except EmailNotValidError as exc:
        raise ValueError(f"not a valid email address: {_shown(value)}: {exc}") from None


def split_name(full: str) -> tuple[str | None, str | None]:
    """(first, last) of a full name: "Last, First" and titles/suffixes understood.

    The middle name goes with the last name: the first name is what a text greets with,
    and nothing of the name is lost.
    """
    from nameparser import HumanName

    parsed = HumanName(full)
    first = parsed.first or None
    last = " ".join(p for p in (parsed.middle, parsed.last, parsed.suffix) if p) or None
    if first is None and last is None:
        return full, None  # only a title ("Dr."): keep it rather than lose the cell
    return first, last


def _shown(value: str, limit: int = 60) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "…")


def _tidy(value: str) -> str:
    """Outer whitespace stripped and inner runs made one space (names, emails, states)."""
    return " ".join(value.split())

# reading ------------------------------------------------------------------------------


class _Lines:
    """Decoded text lines for `csv.reader`, read from bytes with bounds and a position.

    Splitting at b"\\n" before decoding is exact for UTF-8 (0x0A never occurs inside a
    multi-byte sequence), so every line decodes on its own and a bad byte is pinned to
    its line and column. `row` is set by the parser to the data row being read, so the
    errors raised here can name it.
    """

    def __init__(self, fp: BinaryIO) -> None:
        self.fp = fp
        self.line = 0  # physical lines read so far
        self.offset = 0  # bytes read so far
        self.record_bytes = 0  # bytes of the record being parsed
        self.record_line = 1  # line where that record starts
        self.row = 0  # data row being parsed (0: header)

    def __iter__(self) -> _Lines:
        return self

    def start_record(self) -> None:
        self.record_bytes = 0
        self.record_line = self.line + 1

    def where(self) -> str:
        return "header" if self.row == 0 else f"row {self.row}"

    def __next__(self) -> str:
        budget = MAX_RECORD_BYTES - self.record_bytes
        raw = self.fp.readline(budget + 1)
        if not raw:
            raise StopIteration
        if len(raw) > budget:
            raise LeadFileError(
                f"{self.where()} (from line {self.record_line}): record longer than"
                f" {MAX_RECORD_BYTES // 1024} KiB — an unterminated quote, or not a CSV file",
                row=self.row, line=self.record_line,
            )
        self.line += 1
        self.record_bytes += len(raw)
        skip = 0
        if self.line == 1:
            if raw[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
                raise LeadFileError(
                    'header: the file is UTF-16 (Excel "Unicode Text"), not UTF-8;'
                    ' save it as "CSV UTF-8"', row=0, line=1,
                )
            if raw.startswith(codecs.BOM_UTF8):
                skip = len(codecs.BOM_UTF8)
        try:
            text = raw[skip:].decode("utf-8")
        except UnicodeDecodeError as exc:
            start = skip + exc.start
            column = len(raw[skip:start].decode("utf-8", "replace")) + 1
            raise LeadFileError(
                f"{self.where()}: not UTF-8 (byte 0x{raw[start:start + 1].hex()} at line"
                f" {self.line}, column {column}, file offset {self.offset + start});"
                ' save the file as UTF-8 ("CSV UTF-8")',
                row=self.row, line=self.line,
            ) from None
        self.offset += len(raw)
        if "\x00" in text:
            raise LeadFileError(
                f"{self.where()}: NUL byte at line {self.line}, column"
                f" {text.index(chr(0)) + 1} — a binary file, or a spreadsheet saved in the"
                " wrong format", row=self.row, line=self.line,
            )
        return text


def _sniff_delimiter(first_line: str) -> str:
    """"," unless the header uses none and has tabs (TSV) or semicolons (Excel in locales
    with a decimal comma)."""
    if "," in first_line:
        return ","
    if "\t" in first_line:
        return "\t"
    if ";" in first_line:
        return ";"
    return ","


@dataclass
class _Layout:
    """Which columns feed which lead field, from the header."""

    headers: list[str]
    keys: list[str]  # attribute key per column (unique; the header, or "column N")
    fields: dict[str, list[int]] = field(default_factory=dict)  # lead field → columns
    ignored: set[int] = field(default_factory=set)

    @classmethod
    def from_header(cls, header: list[str], line: int = 1) -> _Layout:
        """Map columns to lead fields through the alias table — except for a file that
        starts with our own export columns, which is read by that exact layout (every
        other column an attribute, whatever its name), so export → import is exact."""
        if len(header) > MAX_COLUMNS:
            raise LeadFileError(
                f"header: {len(header)} columns; at most {MAX_COLUMNS} are accepted",
                row=0, line=line,
            )
        headers = [h.strip() for h in header]
        ours = tuple(headers[: len(EXPORT_COLUMNS)]) == EXPORT_COLUMNS
        fixed = len(EXPORT_COLUMNS) if ours else 0
        keys: list[str] = headers[:fixed]
        seen: set[str] = set()
        for i, name in enumerate(headers[fixed:], fixed + 1):
            keys.append(_unique_key(name or f"column {i}", seen))
        layout = cls(headers, keys)
        if ours:
            for i, lead_field in enumerate(EXPORT_COLUMNS):
                layout.fields[lead_field] = [i]
            layout.ignored.add(EXPORT_COLUMNS.index("status"))
        else:
            aliases = header_aliases()
            for i, name in enumerate(headers):
                lead_field = aliases.get(header_key(name))
                if lead_field is not None:
                    layout.fields.setdefault(lead_field, []).append(i)
        if "phone" not in layout.fields:
            found = ", ".join(_shown(h, 30) for h in headers[:12]) or "nothing"
            raise LeadFileError(
                f"header: no phone column (looked for Phone, Phone Number, Mobile, Cell, Tel,"
                f" … — see sms/csv_headers.toml); found {found}",
                row=0, line=line,
            )
        return layout


def _unique_key(base: str, seen: set[str]) -> str:
    """An attribute key for a column: its header, cut to the store's key bound (a survey
    question as a header is legal), with " (2)", " (3)" … when repeated."""
    key, n = _cut(base, MAX_ATTRIBUTE_KEY), 2
    while key in seen:
        suffix = f" ({n})"
        key, n = _cut(base, MAX_ATTRIBUTE_KEY - len(suffix)) + suffix, n + 1
    seen.add(key)
    return key


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Records:
    """Data rows of a CSV: (row number, cells), blank rows skipped, positions tracked."""

    def __init__(self, fp: BinaryIO, on_progress: Callable[[int], None] | None = None):
        self.lines = _Lines(fp)
        self.on_progress = on_progress
        first = self._first_line()
        self.reader = csv.reader(itertools.chain([first], self.lines),
                                 delimiter=_sniff_delimiter(first), strict=True)
        header = self._next(fresh=False)
        if header is None:
            raise LeadFileError("header: the file is empty (no header row)", row=0, line=1)
        self.layout = _Layout.from_header(header, self.lines.record_line)

    def _first_line(self) -> str:
        """The first line with any text (its record is started), for sniffing."""
        while True:
            self.lines.start_record()
            line = next(self.lines, "")
            if not line or line.strip(" \t\r\n,;"):
                return line

    def _next(self, *, fresh: bool = True) -> list[str] | None:
        """The next non-blank record, or None at the end."""
        while True:
            if fresh:
                self.lines.start_record()
            fresh = True
            try:
                record = next(self.reader)
            except StopIteration:
                return None
            except csv.Error as exc:
                raise LeadFileError(self._csv_message(exc), row=self.lines.row,
                                    line=self.lines.record_line) from None
            if any(cell.strip() for cell in record):
                return record

    def _csv_message(self, exc: csv.Error) -> str:
        where = f"{self.lines.where()} (from line {self.lines.record_line})"
        text = str(exc)
        if "unexpected end of data" in text:
            return (f"{where}: a quote opened here is never closed (the rest of the file"
                    " would be one cell); fix the quoting")
        if "new-line character seen in unquoted field" in text:
            return (f"{where}: a bare carriage return inside a line; save the file with"
                    " Windows (CRLF) or Unix (LF) line endings")
        if "expected after" in text:
            return f"{where}: text after a closing quote ({text}); fix the quoting"
        return f"{where}: broken CSV: {text}"

    def __iter__(self) -> Iterator[tuple[int, list[str]]]:
        row = 0
        while True:
            self.lines.row = row + 1
            record = self._next()
            if record is None:
                return
            row += 1
            if self.on_progress is not None and row % PROGRESS_EVERY == 0:
                self.on_progress(self.lines.offset)
            yield row, record


def read_leads(
    fp: BinaryIO,
    *,
    source: str | None,
    default_region: str = "US",
    on_progress: Callable[[int, int], None] | None = None,
) -> Iterator[RowResult]:
    """Every data row of a lead CSV, in order (see the module docstring for the rules).

    `fp` must be seekable: the file is read twice (checked whole, then yielded), from
    its current position. `source` tags rows that have no source column value.
    `on_progress(pass_no, bytes_read)` is called every few thousand rows, pass 1 then 2.
    Raises `LeadFileError` before yielding anything if the file cannot be imported.
    """
    if not fp.seekable():
        raise ValueError("read_leads needs a seekable file (it reads the file twice)")
    start = fp.tell()
    check = _Records(fp, _pass_progress(on_progress, 1))
    checker = _RowBuilder(check.layout, source=source, default_region=default_region)
    # Per data row: its phone as E.164 digits (a "+" and at most 15 digits, never a
    # leading 0, so an int64), 0 when the row will be skipped; and whether pass two may
    # reuse it (no fallback-column warning to write). Normalising a number is the
    # costliest step of a row, so it is done once; 9 bytes a row instead of a dict of
    # every phone seen.
    codes = array("q")
    reusable = bytearray()
    for _row, record in check:
        phone, clean = checker.phone_of(record)
        codes.append(int(phone[1:]) if phone is not None else 0)
        reusable.append(clean)
    superseded = _superseded(codes)
    fp.seek(start)
    records = _Records(fp, _pass_progress(on_progress, 2))
    builder = _RowBuilder(records.layout, source=source, default_region=default_region)
    for row, record in records:
        i = row - 1
        known = codes[i] if i < len(codes) and reusable[i] else 0
        result = builder.build(row, record, known)
        if result.lead is not None and (winner := superseded.get(row)) is not None:
            warning = RowIssue(row, "phone", f"same phone {result.lead.phone} as row"
                               f" {winner}; the later row {winner} is imported instead")
            result = RowResult(row, None, (*result.warnings, warning), (),
                               duplicate_of=winner)
        yield result


def _superseded(codes: array[int]) -> dict[int, int]:
    """Row → the last row with the same phone, for every row that is not its phone's
    last (rows with code 0 are skipped ones and never match). One stable sort of the
    codes: the result holds only the repeated rows, however many phones the file has."""
    import numpy as np

    if len(codes) < 2:
        return {}
    values = np.frombuffer(codes, dtype=np.int64)
    order = np.argsort(values, kind="stable")  # rows of one phone stay in file order
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(ordered)] - 1  # sorted position of each group's last row
    repeated = np.flatnonzero((ordered[1:] == ordered[:-1]) & (ordered[1:] != 0))
    if not repeated.size:
        return {}
    group = np.searchsorted(starts, repeated, side="right") - 1
    last = order[ends[group]]
    return {int(order[p]) + 1: int(w) + 1 for p, w in zip(repeated, last, strict=True)}


def _pass_progress(
    on_progress: Callable[[int, int], None] | None, pass_no: int
) -> Callable[[int], None] | None:
    if on_progress is None:
        return None
    return lambda offset: on_progress(pass_no, offset)


class _RowBuilder:
    """Cells of one record → RowResult, following the header layout."""

    def __init__(self, layout: _Layout, *, source: str | None, default_region: str) -> None:
        self.layout = layout
        self.source = source
        self.region = default_region
        self.width = len(layout.headers)

    def _cells(self, record: list[str]) -> list[str]:
        cells = [c.strip() for c in record[: self.width]]
        return cells + [""] * (self.width - len(cells))

    def _too_long(self, row: int, cells: list[str]) -> RowIssue | None:
        for i, cell in enumerate(cells):
            if len(cell) > MAX_FIELD_CHARS:
                return RowIssue(row, self._field_name(i), f"value longer than"
                                f" {MAX_FIELD_CHARS} characters ({len(cell)}); row skipped")
        return None

    def phone_of(self, record: list[str]) -> tuple[str | None, bool]:
        """The phone `build` would import this record under (None: it would skip it), and
        whether it is the first non-empty phone cell (no fallback warning to write);
        cheap enough for the checking pass."""
        cells = self._cells(record)
        if self._too_long(0, cells) is not None:
            return None, False
        warnings: list[RowIssue] = []
        return self._phone(0, cells, set(), warnings)[0], not warnings

    def build(self, row: int, record: list[str], known: int = 0) -> RowResult:
        """`known`: the row's phone as E.164 digits, already normalised by the checking
        pass from its first non-empty phone cell (0: not known)."""
        warnings: list[RowIssue] = []
        cells = self._cells(record)
        if extra := sum(1 for c in record[self.width :] if c.strip()):
            warnings.append(RowIssue(row, "row", f"{extra} value(s) beyond the last header"
                                     " column ignored"))
        if (too_long := self._too_long(row, cells)) is not None:
            return RowResult(row, None, tuple(warnings), (too_long,))
        used: set[int] = set(self.layout.ignored)

        phone, error = self._phone(row, cells, used, warnings, known)
        if phone is None:
            assert error is not None
            return RowResult(row, None, tuple(warnings), (error,))

        first = self._pick(cells, "first_name", used)
        last = self._pick(cells, "last_name", used)
        if first is None and last is None:
            full = self._pick(cells, "name", used)
            if full is not None:
                first, last = split_name(_tidy(full))
        first = self._name(row, "first_name", first, warnings)
        last = self._name(row, "last_name", last, warnings)

        email = self._pick(cells, "email", used)
        if email is not None:
            try:
                email = normalize_email(_tidy(email))
            except ValueError as exc:
                warnings.append(RowIssue(row, "email", f"{exc}; email not imported"))
                email = None

        state = self._pick(cells, "state", used)
        if state is not None:
            try:
                state = normalize_state(state)
            except ValueError as exc:
                warnings.append(RowIssue(row, "state", f"{exc}; state not imported"))
                state = None

        source = self._pick(cells, "source", used)
        if source is not None:
            source = self._bounded(row, "source", _tidy(source), MAX_FIELD_LENGTH, warnings)
        else:
            source = self.source

        attributes = self._attributes(row, cells, used, warnings)
        lead = LeadInput(phone=phone, first_name=first, last_name=last, email=email,
                         state=state, attributes=attributes, source=source)
        return RowResult(row, lead, tuple(warnings))

    def _field_name(self, col: int) -> str:
        for lead_field, cols in self.layout.fields.items():
            if col in cols:
                return lead_field
        return self.layout.keys[col]

    def _pick(self, cells: list[str], lead_field: str, used: set[int]) -> str | None:
        """The first non-empty cell of the field's columns; the others stay attributes."""
        for i in self.layout.fields.get(lead_field, ()):
            if cells[i]:
                used.add(i)
                return cells[i]
        return None

    def _phone(
        self, row: int, cells: list[str], used: set[int], warnings: list[RowIssue],
        known: int = 0,
    ) -> tuple[str | None, RowIssue | None]:
        """The first valid phone of the phone columns (a file may have Phone and Mobile:
        an empty or bad first one falls back to the next); else the skip error, with
        normalize_phone's reason."""
        columns = self.layout.fields["phone"]
        if known:
            used.add(next(i for i in columns if cells[i]))
            return f"+{known}", None
        first_error: str | None = None
        for i in columns:
            if not cells[i]:
                continue
            try:
                phone = normalize_phone(cells[i], self.region)
            except InvalidPhoneNumber as exc:
                if first_error is None:
                    first_error = str(exc) if len(columns) == 1 \
                        else f"{self.layout.headers[i]}: {exc}"
                continue
            used.add(i)
            if first_error is not None:
                warnings.append(RowIssue(row, "phone", f"{first_error}; used"
                                         f" {self.layout.headers[i]} instead"))
            return phone, None
        return None, RowIssue(row, "phone", first_error or "phone number is empty")

    def _attributes(self, row: int, cells: list[str], used: set[int],
                    warnings: list[RowIssue]) -> dict[str, str]:
        """The remaining non-empty cells under their column keys, within the store's bounds
        (a value too long, or values past the attribute count, are dropped with a
        warning rather than failing the whole batch in the store)."""
        attributes: dict[str, str] = {}
        over = 0
        for i, cell in enumerate(cells):
            if not cell or i in used:
                continue
            key = self.layout.keys[i]
            if len(cell) > MAX_ATTRIBUTE_VALUE:
                warnings.append(RowIssue(row, key, f"longer than {MAX_ATTRIBUTE_VALUE}"
                                         " characters; not imported"))
            elif len(attributes) >= MAX_ATTRIBUTES:
                over += 1
            else:
                attributes[key] = cell
        if over:
            warnings.append(RowIssue(row, "row", f"{over} value(s) beyond the first"
                                     f" {MAX_ATTRIBUTES} extra columns not imported"))
        return attributes

    def _name(self, row: int, lead_field: str, value: str | None,
              warnings: list[RowIssue]) -> str | None:
        if value is None:
            return None
        return self._bounded(row, lead_field, _tidy(value), MAX_NAME_CHARS, warnings)

    @staticmethod
    def _bounded(row: int, lead_field: str, value: str, limit: int,
                 warnings: list[RowIssue]) -> str | None:
        if len(value) > limit:
            warnings.append(RowIssue(row, lead_field, f"longer than {limit} characters;"
                                     " not imported"))
            return None
        return value

# writing ------------------------------------------------------------------------------


def export_header(attribute_keys: Iterable[str]) -> list[str]:
    return [*EXPORT_COLUMNS, *attribute_keys]


def export_row(lead: Lead, attribute_keys: list[str]) -> list[str]:
    """One lead as the export's cells; attributes that are not text are written as JSON so
    nothing is silently stringified into something else."""
    cells = [lead.phone, lead.first_name or "", lead.last_name or "", lead.email or "",
             lead.state or "", lead.status, lead.source or ""]
    for key in attribute_keys:
        value: Any = lead.attributes.get(key)
        if value is None:
            cells.append("")
        elif isinstance(value, str):
            cells.append(value)
        else:
            cells.append(msgspec.json.encode(value).decode())
    return cells


def csv_writer(fp: IO[str]) -> Any:
    """RFC 4180 output: CRLF line ends, quotes only where needed (commas, quotes,
    newlines). `fp` must be opened with newline="" so CRLF is not doubled."""
    return csv.writer(fp, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)


def write_leads(fp: IO[str], leads: Iterable[Lead], attribute_keys: list[str]) -> int:
    """Write header and rows; returns the number of leads written."""
    writer = csv_writer(fp)
    writer.writerow(export_header(attribute_keys))
    count = 0
    for lead in leads:
        writer.writerow(export_row(lead, attribute_keys))
        count += 1
    return count


def leads_to_csv_bytes(leads: list[Lead]) -> bytes:
    """A whole export in memory (tests and small API responses)."""
    keys: dict[str, None] = {}
    for lead in leads:
        keys.update(dict.fromkeys(lead.attributes))
    out = io.StringIO(newline="")
    write_leads(out, leads, list(keys))
    return out.getvalue().encode("utf-8")
