"""The sweep spec: what a sweep is, read from YAML and `--set`.

- schema.py      the sections, their defaults and per-value checks (`SweepSpec`)
- load.py        a file and its overrides into a checked spec (`parse_spec`, `load_spec`)
- yaml_reader.py the YAML, read safely (unique keys, size and alias caps, YAML lines)
- overrides.py   `--set key.sub=value`
- fields.py      reflection over the schema's fields, dotted paths in plain data
- checks.py      swept values checked where they land; which fields may be swept
- messages.py    validation errors as one line each: field, value, YAML line, fix
- trials.py      `Trial`, the resolved config of one point, and its hash

How a search space becomes trials is its kind's: sweeper.search.
"""
