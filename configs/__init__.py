"""The shipped training recipes (YAML), installed as package data: ``--config smoke`` finds smoke.yaml here."""
