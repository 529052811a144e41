"""The errors riskpipe's library code raises for a person to act on.

Library code raises them with a message that names the file, row, column,
field or flag; only the CLI (cli/main.py) turns them into a one-line message
and an exit code.
"""


class UsageError(Exception):
    """A bad argument, flag or configuration value; nothing was written."""


class DataError(Exception):
    """Bad input data or a failed data gate; names the file, column or feature."""
