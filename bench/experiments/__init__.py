"""Experiments: measured prototypes of designs fastbp does not use (yet). Not product code:
no input checks, no tests; each module says what it measured and how to run it again."""
