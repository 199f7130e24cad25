"""Lead list and do-not-contact commands, mounted under `leadline` by ops/cli.py.

    leadline leads import FILE.csv [--source S] [--region CC] [--json]
    leadline leads export FILE.csv [--bom] [--json]
    leadline leads show NUMBER [--json]
    leadline leads list [--status S] [--limit N] [--after-id ID] [--json]
    leadline dnc add NUMBER… | --file F [--reason R] [--json]
    leadline dnc list [--json]

Other programs parse the --json output, so its shape is a contract (see each command's
help). Every command takes --config FILE (its [store] database_url, env overrides
applied) or --database-url. Exit codes: 0 ok, 1 not found, 2 bad input (unreadable or
mis-encoded file, invalid number, bad option) or store error, message on stderr.
The CSV rules live in sms/leads_csv.py; this module only moves rows between the file
and the store, so the heavy imports happen inside the handlers.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ops.store_cli import _print_json, _with_database, _with_db

if TYPE_CHECKING:
    from store.database import Database
    from store.models import Lead, LeadInput

# Rows per upsert_leads call: one transaction each, so a crash loses at most a batch
# and a 100k-row import is ~100 round trips.
BATCH_ROWS = 1000
# Issues listed in the --json report; beyond this only counted ("truncated"), so a file
# where every row warns cannot make the report (and our memory) as large as the file.
MAX_LISTED_ISSUES = 10_000
# Issues a human summary prints before "… and N more".
SHOWN_ISSUES = 10

_IMPORT_HELP = """\
Import leads from a CSV file (UTF-8, header row; see sms/csv_headers.toml for the
column names understood). Leads are upserted by phone in batches of 1000: re-importing
the same file changes nothing; a lead's status is never touched by an import.

--json prints one object:
  {"rows", "created", "updated", "unchanged", "skipped",
   "warnings": [{"row", "field", "reason"}], "errors": [{"row", "field", "reason"}]}
rows = data rows (no header, no blank lines); skipped = rows not imported (no valid
phone, or an over-long value), each with its entry in errors; warnings = values
dropped (bad email, unknown state) or rows superseded by a later row with the same
phone. Lists longer than 10000 entries are cut, adding "truncated": {"warnings": N,
"errors": M}. Exit 0 when the import ran (even with skipped rows); exit 2 for a missing,
unreadable, non-UTF-8 or badly quoted file (the whole file is checked before the
first row is written, so nothing is imported) or a store error (the message says
which rows were already committed); --json then prints {"error": MESSAGE}."""


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    raw = argparse.RawDescriptionHelpFormatter
    leads = subparsers.add_parser("leads", help="lead lists: CSV import/export, lookup")
    leads_sub = leads.add_subparsers(dest="leads_command", required=True)

    imp = _with_db(leads_sub.add_parser("import", help="import leads from a CSV file",
                                        description=_IMPORT_HELP, formatter_class=raw))
    imp.add_argument("file", help="CSV file (UTF-8, with or without BOM)")
    imp.add_argument("--source", default=None,
                     help="source tag for rows without a source column value")
    imp.add_argument("--region", default="US",
                     help="country (ISO code) of numbers written without +country (default US)")
    imp.set_defaults(func=cmd_leads_import)

    exp = _with_db(leads_sub.add_parser(
        "export", help="write every lead to a CSV file", formatter_class=raw,
        description="Columns: phone,first_name,last_name,email,state,status,source, then one"
                    " per attribute key.\nImporting the file into an empty database creates"
                    " the same leads. --json prints\n{\"exported\": N, \"file\": PATH}."))
    exp.add_argument("file", help="CSV file to write (replaced atomically when complete)")
    exp.add_argument("--bom", action="store_true",
                     help="start with a UTF-8 BOM, so Excel shows accented names right")
    exp.set_defaults(func=cmd_leads_export)

    show = _with_db(leads_sub.add_parser(
        "show", help="one lead with its messages", formatter_class=raw,
        description="--json prints the lead {phone, first_name, last_name, email, state,"
                    " status,\nopted_out, dnc, source, attributes, human_takeover,"
                    " created_at, updated_at,\nmessages: [{direction, channel, body, status,"
                    " intent, confidence, created_at}]}.\nExit 1 (and {\"error\": …}) when"
                    " there is no such lead, 2 for an invalid number."))
    show.add_argument("number")
    show.set_defaults(func=cmd_leads_show)

    listing = _with_db(leads_sub.add_parser(
        "list", help="leads by id", formatter_class=raw,
        description="--json prints a JSON array of leads (the fields of `leads show`,"
                    " without messages),\nordered by id. Exit 2 for an unknown --status."))
    listing.add_argument("--status", default=None, help="only leads with this status")
    listing.add_argument("--limit", type=int, default=100, help="at most N leads (1–10000)")
    listing.add_argument("--after-id", type=int, default=0,
                         help="start after this lead id (the next page)")
    listing.set_defaults(func=cmd_leads_list)

    dnc = subparsers.add_parser("dnc", help="the do-not-contact list (blocks every channel)")
    dnc_sub = dnc.add_subparsers(dest="dnc_command", required=True)
    add = _with_db(dnc_sub.add_parser(
        "add", help="block numbers", formatter_class=raw,
        description="--json prints {\"added\": N, \"already\": M, \"invalid\": [{\"input\","
                    " \"reason\"}]}.\nThe valid numbers are added even when some are"
                    " invalid; exit 2 if any is."))
    add.add_argument("numbers", nargs="*", metavar="NUMBER")
    add.add_argument("--file", default=None,
                     help="also read numbers from this file: one per line (# comments), or"
                          " a CSV with a phone column")
    add.add_argument("--reason", default=None, help="why (kept with each entry)")
    add.set_defaults(func=cmd_dnc_add)
    dnc_list = _with_db(dnc_sub.add_parser(
        "list", help="every blocked number",
        description='--json prints [{"phone", "reason", "added_at"}], ordered by phone.'))
    dnc_list.set_defaults(func=cmd_dnc_list)


# leads import -------------------------------------------------------------------------


class _Report:
    """Counts and issues of one import, as the --json object reports them."""

    def __init__(self) -> None:
        self.rows = 0
        self.created = self.updated = self.unchanged = self.skipped = 0
        self.warnings: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []
        self.dropped = {"warnings": 0, "errors": 0}
        self.committed_through = 0  # last data row whose batch is committed

    def note(self, kind: str, issues: Any) -> None:
        target: list[dict[str, Any]] = getattr(self, kind)
        for issue in issues:
            if len(target) < MAX_LISTED_ISSUES:
                target.append({"row": issue.row, "field": issue.field, "reason": issue.reason})
            else:
                self.dropped[kind] += 1

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rows": self.rows, "created": self.created, "updated": self.updated,
            "unchanged": self.unchanged, "skipped": self.skipped,
            "warnings": self.warnings, "errors": self.errors,
        }
        if any(self.dropped.values()):
            out["truncated"] = dict(self.dropped)
        return out

    def committed(self) -> str:
        if self.committed_through == 0:
            return "nothing was imported"
        return f"rows 1–{self.committed_through} imported before the error"


def cmd_leads_import(args: argparse.Namespace) -> int:
    from store.database import MAX_FIELD_LENGTH

    path = Path(args.file)
    if args.source is not None:
        args.source = args.source.strip() or None
        if args.source is not None and len(args.source) > MAX_FIELD_LENGTH:
            return _fail(args, f"--source longer than {MAX_FIELD_LENGTH} characters")
    import phonenumbers

    args.region = args.region.upper()
    if args.region not in phonenumbers.SUPPORTED_REGIONS:
        return _fail(args, f"--region {args.region!r} is not a country code (ISO 3166, e.g. US)")
    try:
        fp = open(path, "rb")  # opened before the store, so a bad path fails fast
    except OSError as exc:
        return _fail(args, f"cannot read {path}: {exc.strerror or exc}")
    size = os.fstat(fp.fileno()).st_size

    async def run(db: Database) -> int:
        from sms.leads_csv import LeadFileError, read_leads
        from store.errors import StoreError

        report = _Report()
        batch: list[LeadInput] = []

        async def flush(through: int) -> None:
            if batch:
                try:
                    result = await db.upsert_leads(batch)
                except (StoreError, ValueError):
                    raise
                except Exception as exc:
                    # Drivers raise their own errors (asyncpg, sqlite3, OSError); any of
                    # them must still end in "rows 1–N imported before the error".
                    raise StoreError(f"{type(exc).__name__}: {exc}") from exc
                report.created += result.created
                report.updated += result.updated
                report.unchanged += result.unchanged
                batch.clear()
            report.committed_through = through

        with fp, _progress(size) as on_progress:
            try:
                rows = read_leads(fp, source=args.source, default_region=args.region,
                                  on_progress=on_progress)
                for result in rows:
                    report.rows = result.row
                    report.note("warnings", result.warnings)
                    report.note("errors", result.errors)
                    if result.errors:
                        report.skipped += 1
                    if result.lead is not None:
                        batch.append(result.lead)
                        if len(batch) >= BATCH_ROWS:
                            await flush(result.row)
                await flush(report.rows)
            except LeadFileError as exc:
                return _fail(args, f"{path}: {exc}; {report.committed()}")
            except StoreError as exc:
                return _fail(args, f"store: {exc}; {report.committed()}")
            except ValueError as exc:  # a row the store refused: nothing of its batch
                return _fail(args, f"{path}: {exc}; {report.committed()}")

        if args.json:
            _print_json(report.as_json())
        else:
            _print_import_summary(path, report)
        return 0

    try:
        return _with_database(args, run, migrate=True, must_exist=False)
    finally:
        fp.close()


@contextlib.contextmanager
def _progress(size: int) -> Iterator[Callable[[int, int], None] | None]:
    """A rich progress bar on stderr when it is a terminal (nothing otherwise: a log or a
    pipe gets no control characters). Pass 1 checks the file, pass 2 imports it."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("checking", total=max(size, 1) * 2)

        def update(pass_no: int, offset: int) -> None:
            bar.update(task, completed=(pass_no - 1) * size + offset,
                       description="checking" if pass_no == 1 else "importing")

        yield update


def _print_import_summary(path: Path, report: _Report) -> None:
    print(f"{path}: {report.rows} rows — {report.created} created, {report.updated} updated,"
          f" {report.unchanged} unchanged, {report.skipped} skipped,"
          f" {len(report.warnings) + report.dropped['warnings']} warnings")
    for label, issues, more in (("skipped", report.errors, report.dropped["errors"]),
                                ("warning", report.warnings, report.dropped["warnings"])):
        for issue in issues[:SHOWN_ISSUES]:
            print(f"  {label}: row {issue['row']} {issue['field']}: {issue['reason']}")
        if (rest := len(issues) - SHOWN_ISSUES + more) > 0:
            print(f"  … and {rest} more ({label}); --json lists them")


# leads export -------------------------------------------------------------------------


def cmd_leads_export(args: argparse.Namespace) -> int:
    """Streamed twice from the store (attribute keys, then rows) into a temporary file
    beside FILE that replaces it only when complete: a failed export never leaves a
    truncated file that looks like a good one."""
    import tempfile
    path = Path(args.file)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp",
                                   dir=path.parent if str(path.parent) else ".")
    except OSError as exc:
        return _fail(args, f"cannot write {path}: {exc.strerror or exc}")
    out = open(fd, "w", encoding="utf-8-sig" if args.bom else "utf-8", newline="")

    async def run(db: Database) -> int:
        from sms.leads_csv import csv_writer, export_header, export_row

        keys: dict[str, None] = {}
        async for lead in db.iter_leads():
            keys.update(dict.fromkeys(lead.attributes))
        attribute_keys = list(keys)
        writer = csv_writer(out)
        writer.writerow(export_header(attribute_keys))
        count = 0
        async for lead in db.iter_leads():
            writer.writerow(export_row(lead, attribute_keys))
            count += 1
        out.close()
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        if args.json:
            _print_json({"exported": count, "file": str(path)})
        else:
            print(f"exported {count} leads to {path}")
        return 0

    try:
        return _with_database(args, run)
    finally:
        out.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


# leads show / list --------------------------------------------------------------------


def _lead_json(lead: Lead) -> dict[str, Any]:
    return {
        "phone": lead.phone, "first_name": lead.first_name, "last_name": lead.last_name,
        "email": lead.email, "state": lead.state, "status": lead.status,
        "opted_out": lead.opted_out, "dnc": lead.dnc, "source": lead.source,
        "attributes": lead.attributes, "human_takeover": lead.human_takeover,
        "created_at": lead.created_at, "updated_at": lead.updated_at,
    }


def cmd_leads_show(args: argparse.Namespace) -> int:
    from store.phones import InvalidPhoneNumber, normalize_phone

    try:
        phone = normalize_phone(args.number)
    except InvalidPhoneNumber as exc:
        return _fail(args, str(exc))

    async def run(db: Database) -> int:
        lead = await db.get_lead(phone)
        if lead is None:
            return _fail(args, f"no lead with phone {phone}", code=1)
        messages = await db.list_messages(phone)
        if args.json:
            out = _lead_json(lead)
            out["messages"] = [
                {"direction": m.direction, "channel": m.channel, "body": m.body,
                 "status": m.status, "intent": m.intent, "confidence": m.confidence,
                 "created_at": m.created_at}
                for m in messages
            ]
            _print_json(out)
            return 0
        print(_lead_line(lead))
        flags = [f for f, on in (("OPTED OUT", lead.opted_out), ("DNC", lead.dnc),
                                 ("human takeover", lead.human_takeover)) if on]
        if flags:
            print("  " + ", ".join(flags))
        if lead.email or lead.source:
            print(f"  email {lead.email or '-'}, source {lead.source or '-'}")
        for key, value in lead.attributes.items():
            print(f"  {key}: {value}")
        for m in messages:
            arrow = "←" if m.direction == "inbound" else "→"
            intent = f" [{m.intent}]" if m.intent else ""
            print(f"  {m.created_at:%Y-%m-%d %H:%M} {arrow} {m.channel} {m.status}{intent}:"
                  f" {m.body}")
        if not messages:
            print("  (no messages)")
        return 0

    return _with_database(args, run)


def _lead_line(lead: Lead) -> str:
    name = " ".join(p for p in (lead.first_name, lead.last_name) if p) or "(no name)"
    return f"{lead.phone}  {name}  {lead.status}  {lead.state or ''}".rstrip()


def cmd_leads_list(args: argparse.Namespace) -> int:
    from store.models import LEAD_STATUSES

    if args.status is not None and args.status not in LEAD_STATUSES:
        return _fail(args, f"--status must be one of {', '.join(LEAD_STATUSES)};"
                     f" got {args.status!r}")
    if not 1 <= args.limit <= 10_000:
        return _fail(args, f"--limit must be between 1 and 10000, got {args.limit}")
    if args.after_id < 0:
        return _fail(args, f"--after-id must be 0 or more, got {args.after_id}")

    async def run(db: Database) -> int:
        found = await db.list_leads(status=args.status, limit=args.limit,
                                    after_id=args.after_id)
        if args.json:
            _print_json([_lead_json(lead) for lead in found])
        else:
            for lead in found:
                print(_lead_line(lead))
            if not found:
                print("no leads")
        return 0

    return _with_database(args, run)


# dnc ----------------------------------------------------------------------------------


def cmd_dnc_add(args: argparse.Namespace) -> int:
    from store.phones import InvalidPhoneNumber, normalize_phone

    inputs = list(args.numbers)
    if args.file:
        try:
            text = Path(args.file).read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            return _fail(args, f"cannot read {args.file}: {exc}")
        inputs += _numbers_in(text)
    if not inputs:
        return _fail(args, "give numbers to add, or --file")
    valid: dict[str, None] = {}
    invalid: list[dict[str, str]] = []
    for raw in inputs:
        try:
            valid[normalize_phone(raw)] = None
        except InvalidPhoneNumber as exc:
            invalid.append({"input": raw, "reason": str(exc)})

    async def run(db: Database) -> int:
        added = await db.dnc_add(list(valid), reason=args.reason) if valid else 0
        out = {"added": added, "already": len(valid) - added, "invalid": invalid}
        if args.json:
            _print_json(out)
        else:
            print(f"added {added} numbers to the do-not-contact list"
                  f" ({len(valid) - added} already there)")
        for bad in invalid:
            print(f"error: {bad['input']!r}: {bad['reason']}", file=sys.stderr)
        return 2 if invalid else 0

    return _with_database(args, run, migrate=True, must_exist=False)


def _numbers_in(text: str) -> list[str]:
    """Numbers from a --file: one per line ("#" starts a comment), or a CSV whose header
    has a phone column (a complaint log or another tool's export), read from that
    column."""
    import csv

    from sms.leads_csv import header_aliases, header_key

    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), "")
    cells = next(csv.reader([first]), [])
    aliases = header_aliases()
    column = next((i for i, cell in enumerate(cells)
                   if aliases.get(header_key(cell.strip())) == "phone"), None)
    if column is None:
        return [s for line in lines if (s := line.split("#", 1)[0].strip())]
    rows = csv.reader(lines[lines.index(first) + 1 :])
    return [cell for row in rows if len(row) > column and (cell := row[column].strip())]


def cmd_dnc_list(args: argparse.Namespace) -> int:
    async def run(db: Database) -> int:
        import msgspec

        count = 0
        after = ""
        if args.json:
            sys.stdout.write("[")
        while page := await db.list_dnc(limit=1000, after=after):
            for e in page:  # streamed: the list may be long
                if args.json:
                    item = {"phone": e.phone, "reason": e.reason, "added_at": e.added_at}
                    sys.stdout.write(("," if count else "") + msgspec.json.encode(item).decode())
                else:
                    print(f"{e.phone}  {e.added_at:%Y-%m-%d}  {e.reason or ''}".rstrip())
                count += 1
            after = page[-1].phone
        if args.json:
            sys.stdout.write("]\n")
        elif not count:
            print("the do-not-contact list is empty")
        return 0

    return _with_database(args, run)


# plumbing -----------------------------------------------------------------------------


def _fail(args: argparse.Namespace, message: str, *, code: int = 2) -> int:
    """Message on stderr; with --json also {"error": message} on stdout, so a program
    reading stdout learns why."""
    if getattr(args, "json", False):
        _print_json({"error": message})
    print(f"error: {message}", file=sys.stderr)
    return code
