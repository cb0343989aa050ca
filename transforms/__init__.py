"""Declarative MONAI transform chains (JSON), installed as the package data ``xray_restore.chains``."""
