"""Lead CSV import benchmark: `leadline leads import` of a generated, realistic file.

    .venv/bin/python -m benchmarks.leads_import_bench [--rows 100000] [--database-url URL]

The file looks like a marketing export: accented names, notes with quoted commas and
line breaks, phones in five spellings, ~1 % unusable phones, ~2 % bad emails, ~1 %
unknown states and ~1 % repeated phones. The real console script runs as a child
process (the way ops runs it) with --database-url — a fresh SQLite file unless one is
given — so the figures are the import's own, not those of loading the whole config
(`--config` imports every layer's settings: ~1.3 s and ~130 MB RSS on its own, measured
with `leadline leads list` under /usr/bin/time -v). Wall time and the child's peak RSS
come from wait4(). Then the same file again (every lead unchanged) and an export.
Prints one JSON line per run; --keep-file writes the generated CSV there too.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgspec

FIRST = ["María", "José", "Zoë", "Ángel", "Renée", "Søren", "Chloé", "Łukasz", "Núria",
         "John", "Aisha", "Wei", "Priya", "Olusegun", "Anne-Marie", "D'Andre"]
LAST = ["García López", "Nuñez", "O'Brien", "Müller", "Dvořák", "Smith", "Nguyễn", "Kowalski",
        "van der Berg", "Ødegård", "Johnson", "Pérez", "Haddad", "Łęcki"]
STATES = ["CA", "California", "NY", "new york", "TX", "Florida", "IL", "wa", "Ontario", "Narnia"]
AREAS = (212, 310, 415, 646, 718, 917, 202, 305, 312, 617)
LEADLINE = str(Path(sys.executable).with_name("leadline"))


def phone(i: int, rng: random.Random) -> str:
    area, exchange, line = AREAS[i % 10], 200 + (i // 10) % 100, (i // 1000) % 10_000
    return rng.choice([
        f"+1{area}{exchange}{line:04d}", f"({area}) {exchange}-{line:04d}",
        f"{area}.{exchange}.{line:04d}", f"1-{area}-{exchange}-{line:04d}",
        f"{area}{exchange}{line:04d}",
    ])


def write_csv(path: Path, rows: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8", newline="") as out:
        out.write("\ufeffPhone Number,First Name,Last Name,E-mail,State,Notes,Lead Source\r\n")
        for i in range(rows):
            roll = rng.random()
            number = "n/a" if roll < 0.01 else phone(rng.randrange(i) if roll < 0.02 and i
                                                     else i, rng)
            first, last = rng.choice(FIRST), rng.choice(LAST)
            email = f"{first[0].lower()}{i}@example.com" if rng.random() > 0.02 else "nope@"
            note = rng.choice(["", "called, left msg", 'said "call me, later"',
                               "two\nlines", "asked about pricing, financing"])
            quoted = '"' + note.replace('"', '""') + '"' if any(c in note for c in ',"\n') \
                else note
            out.write(f"{number},{first},\"{last}\",{email},{rng.choice(STATES)},{quoted},"
                      f"{'web' if i % 2 else ''}\r\n")


def run_cli(argv: list[str], env: dict[str, str]) -> tuple[float, float, float, bytes, int]:
    """(wall s, CPU s, peak RSS MiB, stdout, exit code) of one leadline run. CPU time is
    reported too: on a shared machine it is the steadier figure."""
    start = time.perf_counter()
    proc = subprocess.Popen([LEADLINE, *argv], stdout=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    return time.perf_counter() - start, cpu, usage.ru_maxrss / 1024, out, proc.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--keep-file", default=None, help="also copy the generated CSV here")
    parser.add_argument("--import-only", action="store_true",
                        help="skip the re-import and the export (big files)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="leads-bench-") as tmp:
        src = Path(tmp) / "leads.csv"
        write_csv(src, args.rows)
        size_mb = src.stat().st_size / 1e6
        if args.keep_file:
            shutil.copyfile(src, args.keep_file)
        url = args.database_url or f"sqlite:///{tmp}/bench.db"
        env = dict(os.environ)
        db = ["--database-url", url]
        subprocess.run([LEADLINE, "db", "migrate", *db], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        for label in ("import",) if args.import_only else ("import", "reimport"):
            wall, cpu, rss, out, code = run_cli(["leads", "import", str(src), "--json", *db],
                                                env)
            report = json.loads(out)
            emit(run=label, backend=url.split(":", 1)[0], rows=report["rows"],
                 file_mb=round(size_mb, 1), wall_s=round(wall, 2), cpu_s=round(cpu, 2),
                 rows_per_s=round(report["rows"] / wall),
                 rows_per_cpu_s=round(report["rows"] / cpu), peak_rss_mb=round(rss, 1),
                 exit=code, created=report["created"], updated=report["updated"],
                 unchanged=report["unchanged"], skipped=report["skipped"],
                 warnings=len(report["warnings"])
                 + report.get("truncated", {}).get("warnings", 0))
        if args.import_only:
            return 0
        wall, cpu, rss, out, code = run_cli(
            ["leads", "export", f"{tmp}/out.csv", "--json", *db], env)
        exported = json.loads(out)["exported"]
        emit(run="export", leads=exported, wall_s=round(wall, 2), cpu_s=round(cpu, 2),
             leads_per_s=round(exported / wall), peak_rss_mb=round(rss, 1), exit=code)
    return 0


def emit(**fields: object) -> None:
    sys.stdout.write(msgspec.json.encode(fields).decode() + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    raise SystemExit(main())
