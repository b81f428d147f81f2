"""The ``radiounet`` command line."""
