"""The sweep spec: what a sweep is, read from YAML and `--set`.

- schema.py      the sections, their defaults and per-value checks (`SweepSpec`)
- load.py        a file and its overrides into a checked spec (`parse_spec`, `load_spec`;
                 `parse_user_spec`: with the rules)
- yaml_reader.py the YAML, read safely (unique keys, size and alias caps, YAML lines)
- overrides.py   `--set key.sub=value`: into the search space, merged into sections
- fields.py      reflection over the schema's fields, dotted keys and paths
- checks.py      swept values checked where they land; which fields may be swept
- rules.py       what a setting means for the method, dataset, optimizer, scheduler and
                 search: warnings, and refusals of what can only be a mistake
- messages.py    validation errors as one line each: field, value, YAML line, fix
- trials.py      `Trial`, the resolved config of one point, and its hash

How a search space becomes trials is its kind's: sweeper.search.
"""
