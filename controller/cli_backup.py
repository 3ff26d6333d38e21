"""hallctl backup and hallctl restore (controller.runtime.backups), registered by controller.cli."""

from __future__ import annotations

import argparse
import datetime as dt
import sqlite3
import sys
from pathlib import Path

from controller.config.hall import load_hall
from controller.runtime.backups import BACKUP_DIR, KEEP, restore, take_backup


def cmd_backup(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir)
    name = load_hall(args.config).name if args.config else None
    try:
        done = take_backup(data_dir, Path(args.to) if args.to else None, args.keep,
                           dt.datetime.now().astimezone(), name)
    except (OSError, sqlite3.Error) as e:  # one line, no traceback: the nightly timer's log
        raise RuntimeError(f"backup of {data_dir} failed: {e}") from None
    counts = done.manifest["counts"]
    print(f"{done.path}: {counts['tickets']} tickets, {counts['events']} events, schema version "
          f"{done.manifest['schema_version']}, integrity ok")
    for path in done.removed:
        print(f"removed {path} (older than the newest {args.keep})")
    for warning in done.warnings:
        print(f"hallctl: warning: {warning}", file=sys.stderr)
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    now = dt.datetime.now().astimezone()
    data_dir = Path(args.data_dir)
    try:
        done = restore(Path(args.source), data_dir, Path(args.key) if args.key else None, now)
    except (OSError, sqlite3.Error, ValueError) as e:  # ValueError: a key file that is no key
        raise RuntimeError(f"restore of {args.source} failed: {e}") from None
    m = done.manifest
    print(f"restored {args.source} into {data_dir}: {m['counts']['tickets']} tickets, "
          f"{m['counts']['events']} events, taken {m['created_at']} (schema version "
          f"{m['schema_version']}; the controller migrates it when it starts)")
    for path in done.moved_aside:
        print(f"the database that was there is now {path}")
    if done.key_written:
        print(f"the personal-data key is now {data_dir / 'secret.key'} (mode 600)")
    if m.get("day") == now.date().isoformat():
        print(f"hallctl: note: the backup is from today ({m['created_at']}): tickets issued after "
              "it are not in it, and their numbers may be given out again today", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `backup` and `restore` to hallctl's subcommands."""
    b = sub.add_parser("backup", help="a verified online copy of the hall database (the "
                                      "controller may run), keeping the newest --keep")
    b.add_argument("--data-dir", required=True)
    b.add_argument("--config", help="hall description (TOML): names the hall in the manifest")
    b.add_argument("--to", help=f"the backup directory (default DATA_DIR/{BACKUP_DIR}; better a "
                                "second disk)")
    b.add_argument("--keep", type=int, default=KEEP, metavar="N",
                   help=f"backups kept, the newest (default {KEEP})")
    b.set_defaults(func=cmd_backup)

    r = sub.add_parser("restore", help="check a backup and make it the hall database "
                                       "(controller stopped)")
    r.add_argument("--from", dest="source", required=True, metavar="FILE",
                   help="a backup's .sqlite3 file (its .json manifest beside it)")
    r.add_argument("--data-dir", required=True)
    r.add_argument("--key", metavar="FILE", help="the hall's secret.key, when the data directory "
                                                 "has none yet (backups never hold it)")
    r.set_defaults(func=cmd_restore)
