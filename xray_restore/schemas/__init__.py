"""Package data: JSON Schemas of the files xray_restore writes (``summary.schema.json``)."""
