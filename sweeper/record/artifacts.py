"""Where a SQLite store's artifacts live: beside the database file, so that the store and
its artifacts (spec.yaml, reports, encoders) move and archive together.

MLflow's default puts them in ./mlruns of whatever folder a command ran in, so three
stores used from one folder share one mlruns/ and a copied mlflow.db loses them. An
experiment this project creates in the store `.../NAME.db` keeps its artifacts in
`.../NAME-artifacts/<experiment>/`. MLflow records artifact locations as absolute URIs,
so a store folder that was copied or moved is relocated when it is opened: the
locations under the old folder are rewritten to the same paths under the new one.
A tracking server keeps artifacts where it was started to (its --artifacts-destination).
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

log = logging.getLogger(__name__)

SUFFIX = "-artifacts"
# An experiment tag naming the artifact folder it was created with: how a store that
# moved is recognised.
ROOT_TAG = "sweeper.artifact_root"


def artifact_root(database: Path) -> Path:
    """The folder beside `database` that holds its experiments' artifacts."""
    return database.resolve().with_name(database.stem + SUFFIX)


def artifact_location(database: Path, experiment: str) -> str:
    """The artifact location of a new experiment `experiment` of the SQLite store."""
    return (artifact_root(database) / experiment).as_uri()


def relocate(database: Path) -> int:
    """Point the artifact locations recorded under another folder at this store's own
    artifact folder, when the store was copied or moved with it. Returns how many
    experiments were relocated; a store that cannot be written is left as it is."""
    root = artifact_root(database)
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
            recorded = db.execute("SELECT experiment_id, value FROM experiment_tags "
                                  "WHERE key = ?", (ROOT_TAG,)).fetchall()
    except sqlite3.Error:
        return 0  # not a store of ours yet (being created), or unreadable: MLflow will say
    moved = [(experiment, old) for experiment, old in recorded if old != str(root)]
    if not moved:
        return 0
    new = root.as_uri()
    try:
        with sqlite3.connect(database) as db:
            for experiment, old in moved:
                prefix = Path(old).as_uri()
                start, length = len(prefix) + 1, len(prefix)
                db.execute("UPDATE experiments SET artifact_location = ? || "
                           "substr(artifact_location, ?) WHERE experiment_id = ? AND "
                           "substr(artifact_location, 1, ?) = ?",
                           (new, start, experiment, length, prefix))
                db.execute("UPDATE runs SET artifact_uri = ? || substr(artifact_uri, ?) "
                           "WHERE experiment_id = ? AND substr(artifact_uri, 1, ?) = ?",
                           (new, start, experiment, length, prefix))
                db.execute("UPDATE experiment_tags SET value = ? WHERE experiment_id = ? "
                           "AND key = ?", (str(root), experiment, ROOT_TAG))
    except sqlite3.Error as exc:
        log.warning("the MLflow store %s was moved from %s but cannot be updated (%s): its "
                    "artifacts are read from the old folder", database, moved[0][1], exc)
        return 0
    log.info("relocated the artifacts of %d experiment(s) of %s to %s", len(moved),
             database, root)
    return len(moved)
