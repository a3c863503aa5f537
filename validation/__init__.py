"""Validations: `python -m validation.<claim>` reproduces a paper figure or table."""
