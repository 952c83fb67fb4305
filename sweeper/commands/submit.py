"""`sweeper submit SPEC`: `sweeper run` as a Ray job on a cluster's job server
(sweeper.cluster.submit), or the list of what would be uploaded."""

from __future__ import annotations

import argparse
import sys

from sweeper.commands import read_user_spec
from sweeper.errors import EXIT_OK, SpecError


def submit_command(args: argparse.Namespace) -> int:
    from sweeper.cluster.access import use_token_if_available
    from sweeper.cluster.submit import plan, submit
    from sweeper.search import expand

    overrides = list(args.overrides) + ([f"name={args.name}"] if args.name else [])
    spec, _ = read_user_spec(args.spec, overrides)  # a bad spec fails here, not on the cluster
    datasets = {trial.config.dataset for trial in expand(spec)}
    if args.dry_run:
        upload = plan(args.spec, datasets)
        print("\n".join(upload.listing()))
        for note in upload.notes:
            print(f"sweeper: note: {note}", file=sys.stderr)
        return EXIT_OK
    if not args.address:
        raise SpecError("sweeper submit needs --address (the job server, http://HEAD:8265), "
                        "or --dry-run to list what would be uploaded")
    run_args = [arg for override in args.overrides for arg in ("--set", override)]
    for flag, value in (("--name", args.name), ("--tracking-uri", args.tracking_uri)):
        if value:
            run_args += [flag, value]
    run_args += ["--storage", args.storage]
    run_args += [flag for flag, on in (("--resume", args.resume),
                                       ("--retry-failed", args.retry_failed),
                                       ("--extend", args.extend)) if on]
    if not args.tracking_uri:
        print("sweeper: note: no --tracking-uri: the job's runs go to $MLFLOW_TRACKING_URI on "
              "the cluster, else to a SQLite file in the job's temporary folder",
              file=sys.stderr)
    use_token_if_available()  # before Ray's job client is imported
    return submit(args.address, args.spec, run_args, args.wait, datasets)
